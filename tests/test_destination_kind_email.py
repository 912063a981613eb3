"""The email kind against a local SMTP server: recipients, subjects, both bodies, and how
SMTP refusals are classified (RFC 5321: 5yz permanent, 4yz transient)."""

import pytest
from django.contrib.auth.models import User
from django.core import mail

from destinations.kinds import KINDS
from destinations.kinds.base import clean_config
from destinations.models import Delivery
from incidents import lifecycle
from tests.delivery_helpers import make_destination
from tests.sinks import SMTPSink, use_smtp_sink

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

PUBLIC_URL = "https://tocsin.example.com"


@pytest.fixture(autouse=True)
def public_url(settings):
    settings.TOCSIN_PUBLIC_URL = PUBLIC_URL


def email_destination(service, **config):
    cleaned = clean_config(KINDS["email"].FIELDS, config)
    return make_destination(service, "email", cleaned)


def open_disk_full(service, **fields):
    return lifecycle.open_incident(
        service=service, title="Disk full on db-1", summary="Root volume at 97%",
        entity_id="db-1", severity="critical", **fields,
    )


def bodies(message):
    plain = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return plain, html


def test_email_goes_to_every_recipient_with_the_default_subject(
    service, smtp_sink, deliver_inline
):
    email_destination(service, recipients="oncall@example.com, sre@example.com")
    rita = User.objects.create_user("rita")
    incident = open_disk_full(service)
    lifecycle.acknowledge(incident, actor=rita)
    lifecycle.resolve(incident, actor=rita)

    assert [m["to"] for m in smtp_sink.messages] == [
        ["oncall@example.com", "sre@example.com"]] * 3
    assert [m["message"]["Subject"] for m in smtp_sink.messages] == [
        "Alert Disk full on db-1 changed status to triggered",
        "Alert Disk full on db-1 changed status to acknowledged",
        "Alert Disk full on db-1 changed status to resolved",
    ]
    first = smtp_sink.messages[0]["message"]
    assert first["To"] == "oncall@example.com, sre@example.com"
    rows = sorted(Delivery.objects.filter(incident=incident), key=lambda d: d.created_at)
    assert [(d.status, d.attempts, d.response_status) for d in rows] == [("sent", 1, 250)] * 3
    assert {m["message"]["X-Tocsin-Delivery"] for m in smtp_sink.messages} == {
        str(d.uuid) for d in rows}


def test_email_has_plain_and_html_alternatives_both_linking_the_incident(
    service, smtp_sink, deliver_inline
):
    email_destination(service, recipients=["oncall@example.com"])
    incident = open_disk_full(service)

    message = smtp_sink.messages[0]["message"]
    assert message.get_content_type() == "multipart/alternative"
    plain, html = bodies(message)
    url = f"{PUBLIC_URL}/admin/incidents/incident/{incident.pk}/change/"
    assert f"Open the incident: {url}" in plain
    assert f'href="{url}"' in html
    for text in (plain, html):
        assert f"[Triggered] #{incident.number} Disk full on db-1 (Checkout)" in text
        assert "Root volume at 97%" in text and "db-1" in text


def test_a_custom_subject_template_fills_every_placeholder_and_keeps_unknown_ones(
    service, smtp_sink, deliver_inline
):
    email_destination(
        service, recipients="oncall@example.com",
        subject_template="[{service}/{team}] #{number} {alert_name} is {state} "
                         "({severity}, {urgency}) on {entity_id} {unknown} {url}",
    )
    incident = open_disk_full(service, urgency="low")

    subject = smtp_sink.messages[0]["message"]["Subject"]
    url = f"{PUBLIC_URL}/admin/incidents/incident/{incident.pk}/change/"
    assert subject == (f"[Checkout/Platform] #{incident.number} Disk full on db-1 is triggered "
                       f"(critical, low) on db-1 {{unknown}} {url}")


def test_a_subject_template_cannot_reach_object_attributes(service, smtp_sink, deliver_inline):
    email_destination(service, recipients="oncall@example.com",
                      subject_template="{alert_name.__class__} {unique_id}")
    incident = open_disk_full(service)
    assert smtp_sink.messages[0]["message"]["Subject"] == (
        "{alert_name.__class__} " + incident.unique_id)


def test_a_title_with_line_breaks_cannot_add_mail_headers(service, smtp_sink, deliver_inline):
    email_destination(service, recipients="oncall@example.com")
    lifecycle.open_incident(service=service, title="Disk\r\nBcc: evil@example.com", entity_id="e")
    message = smtp_sink.messages[0]["message"]
    assert message["Bcc"] is None
    assert smtp_sink.messages[0]["to"] == ["oncall@example.com"]
    assert message["Subject"] == "Alert Disk Bcc: evil@example.com changed status to triggered"


@pytest.fixture
def refusing_smtp(settings):
    sinks = []

    def start(reply):
        sinks.append(use_smtp_sink(settings, SMTPSink(rcpt_reply=reply)))
        return sinks[-1]

    yield start
    for sink in sinks:
        sink.close()


def test_a_recipient_refused_with_550_fails_the_delivery_at_once(
    service, refusing_smtp, deliver_inline
):
    sink = refusing_smtp("550 5.1.1 <nobody@example.com>: Recipient address rejected")
    email_destination(service, recipients="nobody@example.com")
    open_disk_full(service)

    failed = Delivery.objects.get()
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert "Recipients refused" in failed.error and "nobody@example.com" in failed.error
    assert deliver_inline == []  # no retry scheduled
    assert sink.rcpt_attempts == 1 and not sink.messages


def test_a_recipient_refused_with_a_temporary_450_is_retried(
    service, refusing_smtp, deliver_inline
):
    refusing_smtp("450 4.2.0 <oncall@example.com>: Recipient address rejected: Greylisted")
    email_destination(service, recipients="oncall@example.com")
    open_disk_full(service)

    pending = Delivery.objects.get()
    assert (pending.status, pending.attempts) == ("pending", 1)
    assert "Greylisted" in pending.error
    assert len(deliver_inline) == 1


def test_an_unreachable_mail_server_is_retried(service, settings, deliver_inline):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = 9  # discard port: nothing listens
    email_destination(service, recipients="oncall@example.com")
    open_disk_full(service)

    pending = Delivery.objects.get()
    assert (pending.status, pending.attempts) == ("pending", 1)
    assert "Mail server unreachable" in pending.error
    assert len(deliver_inline) == 1


def test_a_delivery_sent_over_smtp_records_the_accepted_reply_and_the_message_id(
    service, smtp_sink, deliver_inline
):
    email_destination(service, recipients="oncall@example.com, sre@example.com")
    open_disk_full(service)

    sent = Delivery.objects.get()
    received = smtp_sink.messages[0]["message"]
    assert sent.status == "sent"
    assert sent.response_status == 250
    assert sent.response_body == "Accepted by the mail server for 2 recipients"
    assert sent.remote_id == received["Message-ID"]
    assert sent.remote_id.startswith("<") and sent.remote_id.endswith(">")


def test_every_attempt_is_a_new_mail_with_its_own_message_id(service, smtp_sink, deliver_inline):
    target = email_destination(service, recipients="oncall@example.com")
    incident = open_disk_full(service)
    lifecycle.acknowledge(incident, actor=User.objects.create_user("rita"))

    ids = [m["message"]["Message-ID"] for m in smtp_sink.messages]
    assert len(set(ids)) == 2
    assert set(Delivery.objects.filter(destination=target).values_list(
        "remote_id", flat=True)) == set(ids)


def test_a_delivery_sent_through_an_anymail_provider_records_its_message_id_and_status(
    service, settings, deliver_inline
):
    # anymail's test backend answers like a provider: a message id and "sent" per recipient,
    # and no HTTP response.
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    email_destination(service, recipients="oncall@example.com")
    open_disk_full(service)

    sent = Delivery.objects.get()
    assert sent.status == "sent"
    assert sent.response_status is None
    assert sent.response_body == (
        "Accepted by the mail provider for 1 of 1 recipient (status: sent)")
    assert sent.remote_id == "0"  # the test backend's id: the mail's place in its outbox
    provider_mail = mail.outbox[0]
    assert provider_mail.anymail_status.message_id == 0
    # A provider sets its own Message-ID; Tocsin adds none.
    assert "Message-ID" not in provider_mail.extra_headers
