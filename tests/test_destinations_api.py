"""REST: destinations (secrets write-only, per-kind validation, send test) and deliveries."""

import json

import pytest

from destinations.models import Delivery, Destination
from tests.conftest import api_client_for
from tests.delivery_helpers import make_destination
from tests.sinks import Reply

SECRET = "R0UT1NG-KEY-very-secret"


@pytest.fixture
def manager_api(manager):
    return api_client_for(manager)


def every_response_text(client, destination) -> str:
    texts = [
        client.get("/api/v1/destinations/").content.decode(),
        client.get(f"/api/v1/destinations/{destination.pk}/").content.decode(),
        client.get("/api/v1/schema/").content.decode(),
    ]
    return "\n".join(texts)


def test_manager_creates_a_pagerduty_destination_with_defaults(manager_api, db):
    response = manager_api.post("/api/v1/destinations/", {
        "name": "On-call", "kind": "pagerduty", "config": {"integration_key": SECRET},
    }, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["config"] == {"api_url": "https://events.pagerduty.com"}
    assert body["secrets_set"] == ["integration_key"]
    assert SECRET not in response.content.decode()
    stored = Destination.objects.get(pk=body["id"])
    assert stored.config["integration_key"] == SECRET


def test_secrets_are_absent_from_every_api_response(manager_api, db):
    destinations = [
        Destination.objects.create(name="pd", kind="pagerduty",
                                   config={"integration_key": SECRET}),
        Destination.objects.create(name="og", kind="opsgenie", config={"api_key": SECRET}),
        Destination.objects.create(name="hook", kind="webhook",
                                   config={"url": "https://example.com/h", "secret": SECRET}),
        Destination.objects.create(name="sn", kind="servicenow", config={
            "instance_url": "https://x.service-now.com", "username": "u", "password": SECRET}),
    ]
    for destination in destinations:
        assert SECRET not in every_response_text(manager_api, destination)
    patched = manager_api.patch(f"/api/v1/destinations/{destinations[0].pk}/",
                                {"name": "renamed"}, format="json")
    assert patched.status_code == 200 and SECRET not in patched.content.decode()


def test_updating_without_the_secret_keeps_it(manager_api, db):
    hook = Destination.objects.create(
        name="hook", kind="webhook", config={"url": "https://example.com/a", "secret": SECRET}
    )
    response = manager_api.put(f"/api/v1/destinations/{hook.pk}/", {
        "name": "hook", "kind": "webhook", "config": {"url": "https://example.com/b"},
    }, format="json")
    assert response.status_code == 200, response.content
    hook.refresh_from_db()
    assert hook.config == {"url": "https://example.com/b", "secret": SECRET}


def test_patching_one_config_key_keeps_the_others(manager_api, db):
    og = Destination.objects.create(name="og", kind="opsgenie", config={
        "api_key": SECRET, "api_url": "https://api.opsgenie.com"})
    response = manager_api.patch(f"/api/v1/destinations/{og.pk}/", {
        "config": {"api_url": "https://api.eu.opsgenie.com"}}, format="json")
    assert response.status_code == 200, response.content
    og.refresh_from_db()
    assert og.config == {"api_key": SECRET, "api_url": "https://api.eu.opsgenie.com"}


@pytest.mark.parametrize("config, field", [
    ({}, "webhook_url"),
    ({"webhook_url": "not a url"}, "webhook_url"),
    ({"webhook_url": "ftp://example.com/x"}, "webhook_url"),
    ({"webhook_url": "https://hooks.slack.com/x", "colour": "red"}, "config"),
])
def test_a_bad_config_is_refused_naming_the_key(manager_api, db, config, field):
    response = manager_api.post("/api/v1/destinations/", {
        "name": "chat", "kind": "slack", "config": config}, format="json")
    assert response.status_code == 400
    assert field in response.json()["config"]


def test_email_recipients_are_validated(manager_api, db):
    bad = manager_api.post("/api/v1/destinations/", {
        "name": "mail", "kind": "email", "config": {"recipients": ["ops@example.com", "nope"]},
    }, format="json")
    assert bad.status_code == 400 and "recipients" in bad.json()["config"]
    good = manager_api.post("/api/v1/destinations/", {
        "name": "mail", "kind": "email", "config": {"recipients": "a@example.com, b@example.com"},
    }, format="json")
    assert good.status_code == 201
    assert good.json()["config"]["recipients"] == ["a@example.com", "b@example.com"]
    assert good.json()["config"]["subject_template"] == (
        "Alert {alert_name} changed status to {state}"
    )


def test_the_kind_of_a_destination_cannot_change(manager_api, db):
    hook = Destination.objects.create(name="h", kind="webhook",
                                      config={"url": "https://example.com"})
    response = manager_api.patch(f"/api/v1/destinations/{hook.pk}/", {"kind": "slack"},
                                 format="json")
    assert response.status_code == 400 and "kind" in response.json()


def test_services_list_their_destinations(manager_api, service):
    hook = Destination.objects.create(name="h", kind="webhook",
                                      config={"url": "https://example.com"})
    response = manager_api.patch(f"/api/v1/services/{service.pk}/",
                                 {"destinations": [hook.pk]}, format="json")
    assert response.status_code == 200 and response.json()["destinations"] == [hook.pk]
    assert manager_api.get(f"/api/v1/destinations/{hook.pk}/").json()["services"] == [service.pk]


def test_send_test_returns_the_delivery_with_its_outcome(manager_api, http_sink):
    hook = Destination.objects.create(name="h", kind="webhook",
                                      config={"url": f"{http_sink.url}/in"})
    http_sink.reply(Reply(401, {"error": "bad token"}))
    response = manager_api.post(f"/api/v1/destinations/{hook.pk}/test/")
    assert response.status_code == 201
    body = response.json()
    assert (body["event"], body["status"], body["response_status"]) == ("test", "failed", 401)
    assert "bad token" in body["response_body"]


def test_responder_sees_deliveries_but_cannot_manage_destinations(responder, service, http_sink):
    client = api_client_for(responder)
    hook = make_destination(service, "webhook", {"url": f"{http_sink.url}/in"})
    sent = Delivery.objects.create(destination=hook, event="test", status="failed")
    assert client.get("/api/v1/deliveries/").status_code == 200
    assert client.get(f"/api/v1/deliveries/{sent.pk}/").json()["status"] == "failed"
    assert client.post(f"/api/v1/deliveries/{sent.pk}/resend/").status_code == 403
    assert client.post("/api/v1/destinations/", {"name": "x", "kind": "webhook"},
                       format="json").status_code == 403
    assert client.post(f"/api/v1/destinations/{hook.pk}/test/").status_code == 403


def test_deliveries_filter_by_status_destination_and_incident(manager_api, service, incident):
    one = make_destination(service, "webhook", {"url": "https://example.com/1"}, name="one")
    two = make_destination(service, "webhook", {"url": "https://example.com/2"}, name="two")
    Delivery.objects.create(destination=one, incident=incident, event="acknowledged",
                            status="sent")
    Delivery.objects.create(destination=two, incident=incident, event="acknowledged",
                            status="failed", error="HTTP 404")
    Delivery.objects.create(destination=two, event="test", status="sent")

    def ids(query):
        listing = manager_api.get(f"/api/v1/deliveries/?{query}").json()["results"]
        return [d["destination"] for d in listing]

    assert ids("status=failed") == [two.pk]
    assert sorted(ids(f"incident={incident.pk}")) == [one.pk, two.pk]
    assert ids(f"destination={one.pk}") == [one.pk]
    fields = manager_api.get("/api/v1/deliveries/?status=failed").json()["results"][0]
    for key in ("destination", "incident", "event", "status", "attempts", "response_status",
                "error"):
        assert key in fields


def test_manager_resends_a_failed_delivery(manager_api, service, incident, monkeypatch):
    queued = []
    monkeypatch.setattr("tocsin.taskqueue.async_task", lambda *a, **k: queued.append(a))
    hook = make_destination(service, "webhook", {"url": "https://example.com/1"})
    failed = Delivery.objects.create(destination=hook, incident=incident, event="resolved",
                                     status="failed", attempts=1)
    response = manager_api.post(f"/api/v1/deliveries/{failed.pk}/resend/")
    assert response.status_code == 200 and response.json()["status"] == "pending"
    again = manager_api.post(f"/api/v1/deliveries/{failed.pk}/resend/")
    assert again.status_code == 409


def test_unknown_kind_is_a_clear_400(manager_api, db):
    response = manager_api.post("/api/v1/destinations/", data=json.dumps(
        {"name": "x", "kind": "carrier-pigeon", "config": {}}), content_type="application/json")
    assert response.status_code == 400 and "kind" in response.json()
