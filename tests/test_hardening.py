"""Hostile or broken input: secrets that must not leak, senders' text that must not become
markup, malformed configurations that must be a 400 and not a 500."""

import json

import pytest
from anymail.exceptions import AnymailAPIError

from destinations.models import Delivery, Destination
from incidents import lifecycle
from notifications.models import Notification, NotificationSettings
from tests.conftest import api_client_for
from tests.delivery_helpers import make_destination
from tests.sinks import Reply

SECRET = "TOPSECRET"


def test_a_stored_credential_with_a_line_break_fails_without_quoting_it(
    service, http_sink, inline
):
    # Validation refuses such values; one stored before (or by hand) must still not leak.
    hook = make_destination(service, "opsgenie", {"api_key": f"{SECRET}\nX",
                                                  "api_url": http_sink.url})
    inline(lifecycle.open_incident, service=service, title="x", entity_id="e")
    failed = Delivery.objects.get()
    assert failed.status == "failed" and "header value is invalid" in failed.error
    hook.refresh_from_db()
    assert SECRET not in failed.error and SECRET not in hook.last_error
    assert http_sink.requests == []


def test_slack_and_zenduty_webhook_urls_are_write_only(manager):
    client = api_client_for(manager)
    url = "https://hooks.slack.com/services/T000/B000/" + SECRET
    created = client.post("/api/v1/destinations/", {
        "name": "chat", "kind": "slack", "config": {"webhook_url": url}}, format="json")
    assert created.status_code == 201
    assert SECRET not in created.content.decode()
    assert created.json()["secrets_set"] == ["webhook_url"]
    assert Destination.objects.get().config["webhook_url"] == url


def test_a_title_cannot_ping_a_slack_channel_or_fake_a_link(service, http_sink, inline):
    make_destination(service, "slack", {"webhook_url": f"{http_sink.url}/hook"})
    inline(lifecycle.open_incident, service=service,
           title="<!channel> <https://evil.example|Open incident> & co", entity_id="e")
    body = http_sink.requests[0].json
    assert "<!channel>" not in json.dumps(body) and "<https://evil" not in json.dumps(body)
    assert "&lt;!channel&gt;" in body["text"] and "&amp; co" in body["text"]


def test_a_title_cannot_add_chatwork_tags(service, http_sink, inline):
    make_destination(service, "chatwork", {"api_token": "t", "room_id": "1",
                                           "api_url": http_sink.url})
    inline(lifecycle.open_incident, service=service, title="[toall] wake up [/info]",
           entity_id="e")
    text = http_sink.requests[0].form["body"]
    assert "[toall]" not in text and text.count("[/info]") == 1
    assert text.startswith("[info][title][Triggered] #")


def test_an_email_provider_throttling_is_retried(service, inline, monkeypatch, deliver_inline):
    def throttled(self, *args, **kwargs):
        raise AnymailAPIError("Throttled", status_code=429)

    monkeypatch.setattr("django.core.mail.EmailMultiAlternatives.send", throttled)
    make_destination(service, "email", {"recipients": ["oncall@example.com"]})
    inline(lifecycle.open_incident, service=service, title="x", entity_id="e")
    pending = Delivery.objects.get()
    assert pending.status == "pending" and "Throttled" in pending.error
    assert len(deliver_inline) == 1


def test_a_notification_the_provider_refuses_is_failed_not_left_claimed(
    service, inline, monkeypatch
):
    record = NotificationSettings.load()
    record.default_recipients = ["ops@example.com"]
    record.save()

    def refused(self, *args, **kwargs):
        raise AnymailAPIError("Domain not verified", status_code=403)

    monkeypatch.setattr("django.core.mail.EmailMultiAlternatives.send", refused)
    inline(lifecycle.open_incident, service=service, title="x", entity_id="e")
    notification = Notification.objects.get()
    assert notification.status == "failed" and notification.claimed_until is None
    assert "Domain not verified" in notification.error


@pytest.mark.parametrize("rule", [
    {"name": "x", "conditions": [], "actions": [{"type": ["suppress"]}]},
    {"name": "x", "conditions": [{"field": ["a"], "op": "equals", "value": 1}],
     "actions": [{"type": "suppress"}]},
    {"name": "x", "conditions": [{"path": "a", "op": ["equals"], "value": 1}],
     "actions": [{"type": "suppress"}]},
])
def test_a_rule_with_a_list_where_a_name_belongs_is_a_400(manager, integration, rule):
    response = api_client_for(manager).post(
        f"/api/v1/integrations/{integration.pk}/rules/", rule, format="json")
    assert response.status_code == 400


def test_a_huge_number_in_a_mapping_is_a_400_and_in_a_payload_is_no_match(
    manager, integration
):
    client = api_client_for(manager)
    huge = "1" + "0" * 400
    body = ('{"mapping": {"direct": {"message": {"path": "t"}}, "conditional": [{"if": '
            '[{"path": "x", "op": "gt", "value": ' + huge + '}], "then": {"summary": '
            '{"value": "s"}}}]}}')
    response = client.patch(f"/api/v1/integrations/{integration.pk}/", body,
                            content_type="application/json")
    assert response.status_code == 400
    preview = ('{"payload": {"t": "hi", "x": ' + huge + '}, "mapping": {"direct": {"message": '
               '{"path": "t"}}, "conditional": [{"if": [{"path": "x", "op": "gt", "value": 1}]'
               ', "then": {"summary": {"value": "s"}}}]}}')
    response = client.post(f"/api/v1/integrations/{integration.pk}/preview/", preview,
                           content_type="application/json")
    assert response.status_code == 200
    assert response.json()["alert"]["message"] == "hi"


def test_a_responder_previews_only_against_the_saved_configuration(responder, integration):
    client = api_client_for(responder)
    url = f"/api/v1/integrations/{integration.pk}/preview/"
    assert client.post(url, {"payload": {"message": "x"}}, format="json").status_code == 200
    tried = client.post(url, {"payload": {"message": "x"},
                              "mapping": {"direct": {"message": {"path": "message"}}}},
                        format="json")
    assert tried.status_code == 403 and "permission" in tried.json()["detail"]


def test_a_redirecting_pagerduty_url_does_not_get_the_routing_key_elsewhere(
    service, http_sink, inline
):
    http_sink.reply(Reply(307, {}, {"Location": "http://localhost:9/v2/enqueue"}))
    make_destination(service, "pagerduty", {"integration_key": SECRET,
                                            "api_url": http_sink.url})
    inline(lifecycle.open_incident, service=service, title="x", entity_id="e")
    failed = Delivery.objects.get()
    assert failed.status == "failed" and "redirect to another host" in failed.error
