"""Every HTTP destination kind, through the real sender: an incident is opened, acknowledged
and resolved, and the local sink (scripted to answer like the remote API) sees exactly the
requests that remote API documents.

Docs the expected requests were checked against:
PagerDuty Events API v2 "Send an Alert Event"; Opsgenie Alert API v2 (create, acknowledge,
close with identifierType=alias); ChatWork API v2 POST /rooms/{room_id}/messages; HipChat API v2
"Send room notification"; ilert Events API (POST /api/events); ServiceNow Table API;
Zendesk Tickets API (create, list by external_id, update); Zenduty generic integration;
Slack and Mattermost incoming webhooks (Slack attachment format).
"""

import base64
import hashlib
import hmac
import json
from datetime import datetime

import pytest
from django.contrib.auth.models import User

from destinations import sending
from destinations.kinds import KINDS
from destinations.kinds.base import clean_config
from destinations.models import Delivery
from incidents import lifecycle
from tests.delivery_helpers import make_destination
from tests.sinks import Reply

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

PUBLIC_URL = "https://tocsin.example.com"


@pytest.fixture(autouse=True)
def public_url(settings):
    settings.TOCSIN_PUBLIC_URL = PUBLIC_URL


def destination(service, kind, config, **fields):
    """A destination whose config went through the same validation as the admin and API."""
    return make_destination(service, kind, clean_config(KINDS[kind].FIELDS, config), **fields)


def open_ack_resolve(service, **fields):
    """Run one incident through its whole life, as a responder would."""
    rita, _ = User.objects.get_or_create(username="rita")
    values = {"title": "Disk full on db-1", "summary": "Root volume at 97%",
              "entity_id": "db-1", "severity": "critical", "urgency": "high", **fields}
    incident = lifecycle.open_incident(service=service, **values)
    lifecycle.acknowledge(incident, actor=rita)
    lifecycle.resolve(incident, actor=rita)
    return incident


def incident_url(incident):
    return f"{PUBLIC_URL}/admin/incidents/incident/{incident.pk}/change/"


def deliveries(incident):
    """The incident's deliveries in lifecycle order."""
    order = {"triggered": 0, "acknowledged": 1, "resolved": 2}
    return sorted(Delivery.objects.filter(incident=incident), key=lambda d: order[d.event])


def assert_all_sent(incident, statuses, remote_ids=None):
    rows = deliveries(incident)
    assert [d.event for d in rows] == ["triggered", "acknowledged", "resolved"]
    assert [(d.status, d.attempts, d.error) for d in rows] == [("sent", 1, "")] * 3
    assert [d.response_status for d in rows] == statuses
    if remote_ids is not None:
        assert [d.remote_id for d in rows] == remote_ids


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --- Slack --------------------------------------------------------------------------------


def test_slack_posts_one_message_per_state_with_the_service_and_incident_link(
    service, http_sink, deliver_inline
):
    destination(service, "slack", {"webhook_url": f"{http_sink.url}/services/T0/B0/xyz"})
    http_sink.default = Reply(200, b"ok")
    incident = open_ack_resolve(service)

    url = incident_url(incident)
    assert [(r.method, r.path, r.query) for r in http_sink.requests] == [
        ("POST", "/services/T0/B0/xyz", {})] * 3
    for request, state, color in zip(
        http_sink.requests, ["Triggered", "Acknowledged", "Resolved"],
        ["#d92d20", "#f79009", "#12b76a"], strict=True,
    ):
        assert request.headers["content-type"] == "application/json"
        body = request.json
        headline = f"[{state}] #{incident.number} Disk full on db-1 (Checkout)"
        assert body["text"] == f"{headline} <{url}|Open incident>"
        attachment = body["attachments"][0]
        assert attachment["color"] == color
        assert (attachment["title"], attachment["title_link"]) == (headline, url)
        assert attachment["text"] == "Root volume at 97%"
        fields = {f["title"]: f["value"] for f in attachment["fields"]}
        assert fields["State"] == state and fields["Service"] == "Checkout"
        assert isinstance(attachment["ts"], int)
        assert "username" not in body
    by = [{f["title"]: f["value"] for f in r.json["attachments"][0]["fields"]}.get("By")
          for r in http_sink.requests]
    assert by == [None, "rita", "rita"]
    assert_all_sent(incident, [200, 200, 200])
    assert [d.response_body for d in deliveries(incident)] == ["ok"] * 3


def test_slack_username_override_is_sent_when_configured(service, http_sink, deliver_inline):
    destination(service, "slack", {"webhook_url": f"{http_sink.url}/hook", "username": "Tocsin"})
    lifecycle.open_incident(service=service, title="Disk full", entity_id="db-1")
    assert http_sink.requests[0].json["username"] == "Tocsin"


# --- Mattermost ---------------------------------------------------------------------------


def test_mattermost_posts_markdown_text_attachments_and_the_channel_override(
    service, http_sink, deliver_inline
):
    destination(service, "mattermost", {
        "webhook_url": f"{http_sink.url}/hooks/abc123", "channel": "town-square",
        "username": "tocsin-bot",
    })
    http_sink.default = Reply(200, b"ok")
    incident = open_ack_resolve(service)

    url = incident_url(incident)
    assert [(r.method, r.path) for r in http_sink.requests] == [("POST", "/hooks/abc123")] * 3
    for request, state in zip(http_sink.requests, ["Triggered", "Acknowledged", "Resolved"],
                              strict=True):
        body = request.json
        headline = f"[{state}] #{incident.number} Disk full on db-1 (Checkout)"
        assert body["text"] == f"**{headline}** [Open incident]({url})"
        assert (body["channel"], body["username"]) == ("town-square", "tocsin-bot")
        attachment = body["attachments"][0]
        assert attachment["title_link"] == url
        fields = {f["title"]: f["value"] for f in attachment["fields"]}
        assert fields["State"] == state and fields["Service"] == "Checkout"
    assert_all_sent(incident, [200, 200, 200])


# --- Generic webhook ----------------------------------------------------------------------


def test_webhook_posts_the_incident_with_the_delivery_id_and_no_signature_without_secret(
    service, http_sink, deliver_inline
):
    destination(service, "webhook", {"url": f"{http_sink.url}/tocsin?source=prod"})
    incident = open_ack_resolve(service)

    rows = deliveries(incident)
    assert [(r.method, r.path, r.query) for r in http_sink.requests] == [
        ("POST", "/tocsin", {"source": "prod"})] * 3
    for request, row in zip(http_sink.requests, rows, strict=True):
        assert request.headers["content-type"] == "application/json"
        assert request.headers["x-tocsin-delivery"] == str(row.uuid)
        assert request.headers["x-tocsin-event"] == row.event
        assert "x-tocsin-signature" not in request.headers
        body = request.json
        assert (body["event"], body["delivery_id"]) == (row.event, str(row.uuid))
        assert body["incident"]["unique_id"] == incident.unique_id
        assert body["incident"]["url"] == incident_url(incident)
        assert body["incident"]["service"] == "Checkout"
    assert [r.json["actor"] for r in http_sink.requests] == [None, "rita", "rita"]
    assert len({r.headers["x-tocsin-delivery"] for r in http_sink.requests}) == 3
    assert_all_sent(incident, [200, 200, 200])


def test_webhook_signature_is_the_hmac_sha256_of_the_raw_body(service, http_sink, deliver_inline):
    secret = "s3cr3t-with-ünïcode"
    destination(service, "webhook", {"url": f"{http_sink.url}/hook", "secret": secret})
    incident = open_ack_resolve(service)

    assert len(http_sink.requests) == 3
    for request in http_sink.requests:
        expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["x-tocsin-signature"] == f"sha256={expected}"
        wrong = hmac.new(b"other", request.body, hashlib.sha256).hexdigest()
        assert request.headers["x-tocsin-signature"] != f"sha256={wrong}"
    assert_all_sent(incident, [200, 200, 200])


# --- PagerDuty ----------------------------------------------------------------------------


def pagerduty_ok(key):
    return Reply(202, {"status": "success", "message": "Event processed", "dedup_key": key})


def test_pagerduty_sends_trigger_acknowledge_and_resolve_to_enqueue(
    service, http_sink, deliver_inline
):
    destination(service, "pagerduty", {"integration_key": "R0UT1NGKEY", "api_url": http_sink.url})
    http_sink.default = pagerduty_ok("any")
    incident = lifecycle.open_incident(
        service=service, title="Disk full on db-1", summary="Root volume at 97%",
        entity_id="db-1", severity="critical", urgency="high", labels=["disk"],
    )
    lifecycle.acknowledge(incident)
    lifecycle.resolve(incident)

    assert [(r.method, r.path, r.query) for r in http_sink.requests] == [
        ("POST", "/v2/enqueue", {})] * 3
    trigger, ack, resolve = (r.json for r in http_sink.requests)
    key = f"tocsin-{incident.unique_id}"
    url = incident_url(incident)
    assert trigger == {
        "routing_key": "R0UT1NGKEY", "event_action": "trigger", "dedup_key": key,
        "payload": {
            "summary": f"[Triggered] #{incident.number} Disk full on db-1 (Checkout)",
            "source": "db-1", "severity": "critical", "timestamp": trigger["payload"]["timestamp"],
            "component": "Checkout", "group": "Platform", "class": "critical",
            "custom_details": {"summary": "Root volume at 97%", "incident_number": incident.number,
                               "urgency": "high", "labels": ["disk"], "drill": False},
        },
        "links": [{"href": url, "text": f"Tocsin incident #{incident.number}"}],
        "client": "Tocsin", "client_url": url,
    }
    assert datetime.fromisoformat(trigger["payload"]["timestamp"]) == incident.created_at
    # Follow-up events carry only what the API documents for them.
    assert ack == {"routing_key": "R0UT1NGKEY", "event_action": "acknowledge", "dedup_key": key}
    assert resolve == {"routing_key": "R0UT1NGKEY", "event_action": "resolve", "dedup_key": key}
    assert [d.status for d in deliveries(incident)] == ["sent"] * 3
    assert [d.response_status for d in deliveries(incident)] == [202] * 3


def test_pagerduty_resolve_reuses_the_trigger_dedup_key(service, http_sink, deliver_inline):
    destination(service, "pagerduty", {"integration_key": "KEY", "api_url": http_sink.url})
    first = open_ack_resolve(service, entity_id="db-1")
    second = open_ack_resolve(service, entity_id="db-2")

    keys = [r.json["dedup_key"] for r in http_sink.requests]
    assert keys[:3] == [f"tocsin-{first.unique_id}"] * 3
    assert keys[3:] == [f"tocsin-{second.unique_id}"] * 3
    assert keys[0] != keys[3]


def test_pagerduty_stores_the_dedup_key_it_answers_with(service, http_sink, deliver_inline):
    destination(service, "pagerduty", {"integration_key": "KEY", "api_url": http_sink.url})
    http_sink.default = pagerduty_ok("pd-assigned-key")
    incident = open_ack_resolve(service)
    assert_all_sent(incident, [202, 202, 202], ["pd-assigned-key"] * 3)


@pytest.mark.parametrize(("severity", "urgency", "expected"), [
    ("critical", "high", "critical"), ("error", "low", "error"), ("major", "low", "error"),
    ("warning", "high", "warning"), ("minor", "high", "warning"), ("info", "high", "info"),
    ("Critical", "low", "critical"), ("", "high", "critical"), ("", "low", "warning"),
    ("weird", "low", "warning"),
])
def test_pagerduty_severity_maps_onto_the_four_documented_values(
    service, http_sink, deliver_inline, severity, urgency, expected
):
    destination(service, "pagerduty", {"integration_key": "KEY", "api_url": http_sink.url})
    lifecycle.open_incident(service=service, title="x", entity_id="e", severity=severity,
                            urgency=urgency)
    payload = http_sink.requests[0].json["payload"]
    assert payload["severity"] == expected
    assert payload["severity"] in {"critical", "error", "warning", "info"}
    # payload.class is a string in the API; it is left out rather than sent as null.
    assert payload.get("class", "") == severity


def test_pagerduty_rejection_fails_the_delivery_with_the_api_errors_kept(
    service, http_sink, deliver_inline
):
    destination(service, "pagerduty", {"integration_key": "BAD", "api_url": http_sink.url})
    http_sink.reply(Reply(400, {"status": "invalid event", "message": "Event object is invalid",
                                "errors": ["Length of 'routing_key' is incorrect"]}))
    lifecycle.open_incident(service=service, title="x", entity_id="e")
    failed = Delivery.objects.get()
    assert (failed.status, failed.attempts, failed.response_status) == ("failed", 1, 400)
    assert "routing_key" in failed.response_body


# --- Opsgenie -----------------------------------------------------------------------------


def opsgenie_ok(request_id):
    return Reply(202, {"result": "Request will be processed", "took": 0.107,
                       "requestId": request_id})


def test_opsgenie_creates_then_acknowledges_and_closes_by_alias(
    service, http_sink, deliver_inline
):
    destination(service, "opsgenie", {"api_key": "genie-123", "api_url": http_sink.url,
                                      "responders": "SRE"})
    http_sink.reply(opsgenie_ok("req-create"), opsgenie_ok("req-ack"), opsgenie_ok("req-close"))
    incident = open_ack_resolve(service)

    alias = f"tocsin-{incident.unique_id}"
    url = incident_url(incident)
    assert [(r.method, r.path, r.query) for r in http_sink.requests] == [
        ("POST", "/v2/alerts", {}),
        ("POST", f"/v2/alerts/{alias}/acknowledge", {"identifierType": "alias"}),
        ("POST", f"/v2/alerts/{alias}/close", {"identifierType": "alias"}),
    ]
    for request in http_sink.requests:
        assert request.headers["authorization"] == "GenieKey genie-123"
        assert request.headers["content-type"] == "application/json"
    create, ack, close = (r.json for r in http_sink.requests)
    assert create["message"] == f"[Triggered] #{incident.number} Disk full on db-1 (Checkout)"
    assert create["alias"] == alias
    assert create["priority"] == "P1"
    assert create["description"] == f"Root volume at 97%\n\n{url}"
    assert (create["source"], create["entity"]) == ("Tocsin", "db-1")
    assert create["tags"] == ["service:Checkout"]
    assert create["responders"] == [{"name": "SRE", "type": "team"}]
    # Opsgenie's details are a map of strings to strings.
    assert create["details"]["incident_url"] == url
    assert all(isinstance(v, str) for v in create["details"].values())
    assert ack["user"] == close["user"] == "rita"
    assert ack["source"] == close["source"] == "Tocsin"
    assert ack["note"] == f"Acknowledged in Tocsin: {url}"
    assert close["note"] == f"Resolved in Tocsin: {url}"
    assert_all_sent(incident, [202, 202, 202], ["req-create", "req-ack", "req-close"])


@pytest.mark.parametrize(("severity", "urgency", "priority"), [
    ("critical", "high", "P1"), ("major", "high", "P2"), ("warning", "high", "P3"),
    ("info", "high", "P5"), ("", "high", "P2"), ("", "low", "P4"),
])
def test_opsgenie_priority_follows_the_severity(
    service, http_sink, deliver_inline, severity, urgency, priority
):
    destination(service, "opsgenie", {"api_key": "k", "api_url": http_sink.url})
    lifecycle.open_incident(service=service, title="x", entity_id="e", severity=severity,
                            urgency=urgency)
    assert http_sink.requests[0].json["priority"] == priority
    assert "responders" not in http_sink.requests[0].json


def test_opsgenie_message_is_cut_to_the_documented_130_characters(
    service, http_sink, deliver_inline
):
    destination(service, "opsgenie", {"api_key": "k", "api_url": http_sink.url})
    lifecycle.open_incident(service=service, title="x" * 400, entity_id="e")
    assert len(http_sink.requests[0].json["message"]) == 130


# --- ChatWork -----------------------------------------------------------------------------


def test_chatwork_posts_a_form_encoded_body_to_the_room_with_the_token_header(
    service, http_sink, deliver_inline
):
    destination(service, "chatwork", {"api_token": "cw-token", "room_id": "123456",
                                      "api_url": http_sink.url})
    http_sink.reply(Reply(200, {"message_id": "1001"}), Reply(200, {"message_id": "1002"}),
                    Reply(200, {"message_id": "1003"}))
    incident = open_ack_resolve(service)

    assert [(r.method, r.path, r.query) for r in http_sink.requests] == [
        ("POST", "/v2/rooms/123456/messages", {})] * 3
    for request, state in zip(http_sink.requests, ["Triggered", "Acknowledged", "Resolved"],
                              strict=True):
        assert request.headers["x-chatworktoken"] == "cw-token"
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        assert "authorization" not in request.headers
        form = request.form
        assert set(form) == {"body"}
        headline = f"[{state}] #{incident.number} Disk full on db-1 (Checkout)"
        assert form["body"].startswith(f"[info][title]{headline}[/title]")
        assert form["body"].endswith(f"{incident_url(incident)}[/info]")
    assert_all_sent(incident, [200, 200, 200], ["1001", "1002", "1003"])


def test_chatwork_default_api_url_is_the_public_service():
    config = clean_config(KINDS["chatwork"].FIELDS, {"api_token": "t", "room_id": "1"})
    assert config["api_url"] == "https://api.chatwork.com"


# --- HipChat ------------------------------------------------------------------------------


def test_hipchat_sends_a_room_notification_with_a_bearer_token(
    service, http_sink, deliver_inline
):
    destination(service, "hipchat", {"api_url": http_sink.url, "room": "Ops Room",
                                     "auth_token": "hc-token"})
    http_sink.default = Reply(204, b"")
    incident = open_ack_resolve(service)

    assert [(r.method, r.path, r.query) for r in http_sink.requests] == [
        ("POST", "/v2/room/Ops%20Room/notification", {})] * 3
    for request in http_sink.requests:
        assert request.headers["authorization"] == "Bearer hc-token"
        assert request.headers["content-type"] == "application/json"
    bodies = [r.json for r in http_sink.requests]
    assert [b["color"] for b in bodies] == ["red", "yellow", "green"]
    assert [b["notify"] for b in bodies] == [True, False, False]
    for body, state in zip(bodies, ["Triggered", "Acknowledged", "Resolved"], strict=True):
        assert body["message_format"] == "text"
        assert body["from"] == "Tocsin"
        assert body["message"] == (f"[{state}] #{incident.number} Disk full on db-1 (Checkout)"
                                   f" — {incident_url(incident)}")
    assert_all_sent(incident, [204, 204, 204])


# --- ilert --------------------------------------------------------------------------------


def test_ilert_sends_alert_accept_and_resolve_events_with_one_alert_key(
    service, http_sink, deliver_inline
):
    destination(service, "ilert", {"integration_key": "il1api123", "api_url": http_sink.url})
    http_sink.default = Reply(202, b"")
    incident = open_ack_resolve(service)

    key = f"tocsin-{incident.unique_id}"
    url = incident_url(incident)
    assert [(r.method, r.path, r.query) for r in http_sink.requests] == [
        ("POST", "/api/events", {})] * 3
    alert, accept, resolve = (r.json for r in http_sink.requests)
    assert [e["eventType"] for e in (alert, accept, resolve)] == ["ALERT", "ACCEPT", "RESOLVE"]
    assert {e["alertKey"] for e in (alert, accept, resolve)} == {key}
    assert {e["integrationKey"] for e in (alert, accept, resolve)} == {"il1api123"}
    # summary is required on every event type.
    assert alert["summary"] == f"[Triggered] #{incident.number} Disk full on db-1 (Checkout)"
    assert accept["summary"].startswith("[Acknowledged]")
    assert resolve["summary"].startswith("[Resolved]")
    assert alert["details"] == "Root volume at 97%"
    assert alert["priority"] == "HIGH"
    assert alert["links"] == [{"href": url, "text": f"Tocsin incident #{incident.number}"}]
    assert alert["customDetails"]["service"] == "Checkout"
    assert "details" not in accept and "priority" not in resolve
    assert_all_sent(incident, [202, 202, 202])


def test_ilert_low_urgency_is_low_priority(service, http_sink, deliver_inline):
    destination(service, "ilert", {"integration_key": "k", "api_url": http_sink.url})
    lifecycle.open_incident(service=service, title="x", entity_id="e", urgency="low")
    assert http_sink.requests[0].json["priority"] == "LOW"


# --- ServiceNow ---------------------------------------------------------------------------

SYS_ID = "9d385017c611228701d22104cc95c371"


def servicenow_record(state):
    return {"sys_id": SYS_ID, "number": "INC0010023", "state": state}


def test_servicenow_creates_an_incident_once_then_updates_it_by_the_kept_sys_id(
    service, http_sink, deliver_inline
):
    destination(service, "servicenow", {
        "instance_url": f"{http_sink.url}/", "username": "tocsin.integration",
        "password": "pw", "assignment_group": "Service Desk",
    })
    http_sink.reply(
        Reply(201, {"result": {"sys_id": SYS_ID}}),
        Reply(200, {"result": servicenow_record("2")}),
        Reply(200, {"result": servicenow_record("6")}),
    )
    incident = open_ack_resolve(service)

    key = f"tocsin-{incident.unique_id}"
    url = incident_url(incident)
    assert [(r.method, r.path, r.query) for r in http_sink.requests] == [
        ("POST", "/api/now/table/incident", {"sysparm_fields": "sys_id"}),
        ("PATCH", f"/api/now/table/incident/{SYS_ID}", {}),
        ("PATCH", f"/api/now/table/incident/{SYS_ID}", {}),
    ]
    for request in http_sink.requests:
        assert request.headers["authorization"] == basic("tocsin.integration", "pw")
        assert request.headers["accept"] == "application/json"
    create = http_sink.requests[0].json
    assert create == {
        "short_description": f"[Triggered] #{incident.number} Disk full on db-1 (Checkout)",
        "description": f"Root volume at 97%\n\nTocsin: {url}",
        "correlation_id": key, "correlation_display": "Tocsin",
        "urgency": "1", "impact": "1", "assignment_group": "Service Desk",
    }
    assert http_sink.requests[1].json == {"state": "2",
                                          "work_notes": "Acknowledged in Tocsin by rita"}
    assert http_sink.requests[2].json == {
        "state": "6", "close_code": "Solution provided",
        "close_notes": f"Resolved in Tocsin by rita: {url}",
    }
    assert_all_sent(incident, [201, 200, 200], [SYS_ID] * 3)


def test_servicenow_update_without_a_record_creates_one_in_the_new_state(
    service, http_sink, deliver_inline
):
    destination(service, "servicenow", {
        "instance_url": http_sink.url, "username": "u", "password": "p",
        "close_code": "Resolved by caller",
    })
    # The create fails for good (a resolve waits for a create that is being retried).
    http_sink.reply(Reply(400, {"error": {"message": "bad"}}))
    incident = lifecycle.open_incident(service=service, title="x", entity_id="e")
    http_sink.reply(Reply(200, {"result": []}),
                    Reply(201, {"result": servicenow_record("6")}))
    lifecycle.resolve(incident)

    find, create = http_sink.requests[1:]
    assert (find.method, create.method, create.path) == ("GET", "POST", "/api/now/table/incident")
    assert create.json["correlation_id"] == f"tocsin-{incident.unique_id}"
    assert (create.json["state"], create.json["close_code"]) == ("6", "Resolved by caller")
    resolved = Delivery.objects.get(event="resolved")
    assert (resolved.status, resolved.remote_id) == ("sent", SYS_ID)


# --- Zendesk ------------------------------------------------------------------------------


def test_zendesk_creates_a_ticket_once_then_opens_and_solves_it_by_the_kept_id(
    service, http_sink, deliver_inline
):
    destination(service, "zendesk", {"api_url": http_sink.url, "email": "agent@example.com",
                                     "api_token": "zd-token", "group_id": "360001"})
    ticket = {"id": 35436, "status": "new"}
    http_sink.reply(
        Reply(201, {"ticket": ticket}),
        Reply(200, {"ticket": {**ticket, "status": "open"}}),
        Reply(200, {"ticket": {**ticket, "status": "solved"}}),
    )
    incident = open_ack_resolve(service)

    key = f"tocsin-{incident.unique_id}"
    url = incident_url(incident)
    assert [(r.method, r.path, r.query) for r in http_sink.requests] == [
        ("POST", "/api/v2/tickets.json", {}),
        ("PUT", "/api/v2/tickets/35436.json", {}),
        ("PUT", "/api/v2/tickets/35436.json", {}),
    ]
    for request in http_sink.requests:
        assert request.headers["authorization"] == basic("agent@example.com/token", "zd-token")
    create = http_sink.requests[0].json["ticket"]
    assert create == {
        "subject": f"[Triggered] #{incident.number} Disk full on db-1 (Checkout)",
        "comment": {"body": f"Root volume at 97%\n\nTocsin: {url}"},
        "external_id": key, "type": "incident", "priority": "urgent",
        "tags": ["tocsin", "tocsin_triggered"], "group_id": 360001,
    }
    assert http_sink.requests[1].json == {"ticket": {
        "status": "open",
        "comment": {"body": f"Acknowledged in Tocsin by rita: {url}", "public": False}}}
    assert http_sink.requests[2].json == {"ticket": {
        "status": "solved",
        "comment": {"body": f"Resolved in Tocsin by rita: {url}", "public": False}}}
    assert_all_sent(incident, [201, 200, 200], ["35436"] * 3)


def test_zendesk_update_without_a_ticket_creates_one_already_solved(
    service, http_sink, deliver_inline
):
    destination(service, "zendesk", {"api_url": http_sink.url, "email": "a@example.com",
                                     "api_token": "t"})
    http_sink.reply(Reply(422, {"error": "RecordInvalid"}))
    incident = lifecycle.open_incident(service=service, title="x", entity_id="e", urgency="low")
    http_sink.reply(Reply(200, {"tickets": [], "count": 0}),
                    Reply(201, {"ticket": {"id": 77}}))
    lifecycle.resolve(incident)

    create = http_sink.requests[2]
    assert (create.method, create.path) == ("POST", "/api/v2/tickets.json")
    ticket = create.json["ticket"]
    assert (ticket["status"], ticket["priority"]) == ("solved", "normal")
    assert "group_id" not in ticket
    assert Delivery.objects.get(event="resolved").remote_id == "77"


# --- Zenduty ------------------------------------------------------------------------------


def test_zenduty_sends_alert_types_with_a_stable_entity_id_and_the_incident_link(
    service, http_sink, deliver_inline
):
    destination(service, "zenduty", {
        "webhook_url": f"{http_sink.url}/api/events/3f0c-integration-key/"})
    http_sink.default = Reply(201, {"message": "Disk full on db-1", "alert_type": "critical"})
    incident = open_ack_resolve(service)

    url = incident_url(incident)
    assert [(r.method, r.path, r.query) for r in http_sink.requests] == [
        ("POST", "/api/events/3f0c-integration-key/", {})] * 3
    bodies = [r.json for r in http_sink.requests]
    assert [b["alert_type"] for b in bodies] == ["critical", "acknowledged", "resolved"]
    assert {b["entity_id"] for b in bodies} == {f"tocsin-{incident.unique_id}"}
    for body, event in zip(bodies, ["triggered", "acknowledged", "resolved"], strict=True):
        assert body["message"] == "Disk full on db-1"
        assert body["summary"] == "Root volume at 97%"
        assert body["urls"] == [{"link_url": url,
                                 "link_text": f"Tocsin incident #{incident.number}"}]
        assert body["payload"]["event"] == event
        assert body["payload"]["tocsin"]["unique_id"] == incident.unique_id
    assert_all_sent(incident, [201, 201, 201])


@pytest.mark.parametrize(("severity", "alert_type"), [
    ("critical", "critical"), ("major", "error"), ("minor", "warning"), ("info", "info"),
    ("", "critical"),
])
def test_zenduty_trigger_alert_type_is_one_of_the_documented_choices(
    service, http_sink, deliver_inline, severity, alert_type
):
    destination(service, "zenduty", {"webhook_url": f"{http_sink.url}/api/events/k/"})
    lifecycle.open_incident(service=service, title="x", entity_id="e", severity=severity)
    assert http_sink.requests[0].json["alert_type"] == alert_type


# --- Every kind ---------------------------------------------------------------------------


HTTP_CONFIGS = {
    "slack": lambda url: {"webhook_url": f"{url}/hook"},
    "mattermost": lambda url: {"webhook_url": f"{url}/hooks/x"},
    "webhook": lambda url: {"url": f"{url}/hook", "secret": "s"},
    "pagerduty": lambda url: {"integration_key": "k", "api_url": url},
    "opsgenie": lambda url: {"api_key": "k", "api_url": url},
    "chatwork": lambda url: {"api_token": "t", "room_id": "1", "api_url": url},
    "hipchat": lambda url: {"api_url": url, "room": "1", "auth_token": "t"},
    "ilert": lambda url: {"integration_key": "k", "api_url": url},
    "servicenow": lambda url: {"instance_url": url, "username": "u", "password": "p"},
    "zendesk": lambda url: {"api_url": url, "email": "a@example.com", "api_token": "t"},
    "zenduty": lambda url: {"webhook_url": f"{url}/api/events/k/"},
}


def test_every_http_kind_is_covered_here():
    assert set(HTTP_CONFIGS) == set(KINDS) - {"email"}


# Where a test send's own key shows up: kinds that tie events together get a key of their own
# for a test, so a test can never acknowledge or resolve a real incident.
TEST_KEY_FIELD = {
    "pagerduty": lambda body, test: body["dedup_key"] == f"tocsin-test-{test.uuid}",
    "opsgenie": lambda body, test: body["alias"] == f"tocsin-test-{test.uuid}",
    "ilert": lambda body, test: body["alertKey"] == f"tocsin-test-{test.uuid}",
    "servicenow": lambda body, test: body["correlation_id"] == f"tocsin-test-{test.uuid}",
    "zendesk": lambda body, test: body["ticket"]["external_id"] == f"tocsin-test-{test.uuid}",
    "zenduty": lambda body, test: body["entity_id"] == f"tocsin-test-{test.pk}",
    "webhook": lambda body, test: body["delivery_id"] == str(test.uuid),
}


@pytest.mark.parametrize("kind", sorted(HTTP_CONFIGS))
def test_a_test_send_of_every_kind_never_touches_a_real_incident(
    kind, service, http_sink, deliver_inline
):
    target = destination(service, kind, HTTP_CONFIGS[kind](http_sink.url))
    http_sink.default = Reply(200, {"result": {"sys_id": SYS_ID}, "ticket": {"id": 1}})
    test = sending.send_test(target)

    assert (test.status, test.attempts, test.incident) == ("sent", 1, None)
    assert [r.method for r in http_sink.requests] == ["POST"]
    request = http_sink.requests[0]
    if kind in TEST_KEY_FIELD:
        assert TEST_KEY_FIELD[kind](request.json, test)
    text = request.form["body"] if kind == "chatwork" else request.body.decode()
    assert f"/admin/destinations/destination/{target.pk}/change/" in text


@pytest.mark.parametrize("kind", sorted(HTTP_CONFIGS))
def test_every_http_kind_retries_a_503_and_fails_a_401_at_once(
    kind, service, http_sink, deliver_inline
):
    destination(service, kind, HTTP_CONFIGS[kind](http_sink.url))
    http_sink.reply(Reply(503, {"error": "maintenance"}, {"Retry-After": "60"}))
    lifecycle.open_incident(service=service, title="x", entity_id="e1")
    pending = Delivery.objects.get()
    assert (pending.status, pending.response_status) == ("pending", 503)
    assert len(deliver_inline) == 1

    http_sink.reply(Reply(401, {"error": "bad credentials"}))
    lifecycle.open_incident(service=service, title="y", entity_id="e2")
    failed = Delivery.objects.exclude(pk=pending.pk).get()
    assert (failed.status, failed.attempts, failed.response_status) == ("failed", 1, 401)
    assert "bad credentials" in failed.response_body
    assert json.loads(failed.response_body) == {"error": "bad credentials"}
