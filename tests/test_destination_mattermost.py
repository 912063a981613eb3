"""Mattermost renders what Tocsin posts as Markdown and turns @-words into notifications:
an alert's text must reach it as plain words, never as a mention, a link or an image."""

from django.contrib.auth.models import User

from destinations.kinds import mattermost
from incidents import lifecycle
from tests.delivery_helpers import make_destination
from tests.sinks import Reply

Z = "\u200b"  # the zero-width space that breaks mentions and autolinks
HOSTILE_TITLE = "@channel @all @here [x](http://evil) ![x](http://evil/pixel) www.evil.example"
HOSTILE_SUMMARY = "**ping** <@U123> `code` ~town-square | a & b <https://evil|y>"


def test_mattermost_gets_alert_text_with_mentions_links_images_and_autolinks_neutralised(
    service, http_sink, inline, settings
):
    settings.TOCSIN_PUBLIC_URL = "https://tocsin.example.com"
    make_destination(service, "mattermost", {"webhook_url": f"{http_sink.url}/hooks/x"})
    http_sink.default = Reply(200, b"ok")
    service.name = "Pay[ments](http://evil)"
    service.save()
    incident = inline(lifecycle.open_incident, service=service, title=HOSTILE_TITLE,
                      summary=HOSTILE_SUMMARY, entity_id="e")

    title = (f"@{Z}channel @{Z}all @{Z}here \\[x\\]\\(http:{Z}//evil\\) "
             f"\\!\\[x\\]\\(http:{Z}//evil/pixel\\) www{Z}.evil.example")
    service_name = f"Pay\\[ments\\]\\(http:{Z}//evil\\)"
    headline = f"[Triggered] #{incident.number} {title} ({service_name})"
    url = f"https://tocsin.example.com/admin/incidents/incident/{incident.pk}/change/"
    body = http_sink.requests[0].json
    assert body["text"] == f"**{headline}** [Open incident]({url})"
    attachment = body["attachments"][0]
    assert attachment["title"] == headline
    assert attachment["text"] == (f"\\*\\*ping\\*\\* &lt;@{Z}U123&gt; \\`code\\` \\~town-square "
                                  f"\\| a &amp; b &lt;https:{Z}//evil\\|y&gt;")
    fields = {f["title"]: f["value"] for f in attachment["fields"]}
    assert fields["Service"] == service_name


def test_the_actor_shown_to_mattermost_cannot_mention_anyone(service, http_sink, inline):
    make_destination(service, "mattermost", {"webhook_url": f"{http_sink.url}/hooks/x"})
    incident = inline(lifecycle.open_incident, service=service, title="Disk full",
                      entity_id="e")
    actor, _ = User.objects.get_or_create(username="@all")
    inline(lifecycle.acknowledge, incident, actor=actor)
    attachment = http_sink.requests[1].json["attachments"][0]
    fields = {f["title"]: f["value"] for f in attachment["fields"]}
    assert fields["By"] == f"@{Z}all"


def test_plain_alert_text_reaches_mattermost_unchanged():
    assert mattermost.escape("Disk full on db-1: 97% used, 3.2 GB left") == (
        "Disk full on db-1: 97% used, 3.2 GB left")
