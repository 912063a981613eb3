import pytest
from django.core.management import call_command

from incidents import lifecycle
from incidents.models import Incident, Service, Team
from integrations.models import Alert, InboundEvent, Integration, IntegrationToken
from tests.conftest import api_client_for


@pytest.fixture
def as_manager(manager):
    return api_client_for(manager)


@pytest.fixture
def as_responder(responder):
    return api_client_for(responder)


def test_requests_without_a_token_get_401_json(db):
    response = api_client_for(None).get("/api/v1/incidents/")
    assert response.status_code == 401
    assert "detail" in response.json()


def test_bad_token_gets_401(db):
    client = api_client_for(None)
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.get("/api/v1/incidents/").status_code == 401


def test_manager_creates_team_service_and_generic_integration(as_manager):
    team = as_manager.post("/api/v1/teams/", {"name": "Payments"}, format="json")
    assert team.status_code == 201, team.content
    service = as_manager.post(
        "/api/v1/services/", {"name": "Card API", "team": team.json()["id"]}, format="json"
    )
    assert service.status_code == 201, service.content
    created = as_manager.post(
        "/api/v1/integrations/",
        {"name": "Prometheus", "kind": "generic", "service": service.json()["id"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    key = Integration.objects.get(pk=body["id"]).key
    assert body["webhook_url"] == f"http://localhost:8000/api/events/{key}/"
    assert body["email_address"] is None
    assert body["status"] == "enabled"
    assert body["create_incidents_for"] == ["critical"]


def test_email_integration_response_has_email_address(as_manager, service):
    created = as_manager.post(
        "/api/v1/integrations/", {"name": "Mail", "kind": "email", "service": service.pk},
        format="json",
    )
    assert created.status_code == 201
    assert created.json()["email_address"].endswith("@alerts.localhost")
    assert created.json()["webhook_url"] is None


def test_integration_patch_status_and_create_incidents_for(as_manager, integration):
    response = as_manager.patch(
        f"/api/v1/integrations/{integration.pk}/",
        {"status": "disabled", "create_incidents_for": ["critical", "error"]}, format="json",
    )
    assert response.status_code == 200, response.content
    integration.refresh_from_db()
    assert integration.status == "disabled"
    assert integration.create_incidents_for == ["critical", "error"]


def test_rate_limit_is_configurable_per_integration(as_manager, integration):
    assert as_manager.get(f"/api/v1/integrations/{integration.pk}/").json()[
        "rate_limit_per_minute"] == 600
    response = as_manager.patch(
        f"/api/v1/integrations/{integration.pk}/", {"rate_limit_per_minute": 30}, format="json"
    )
    assert response.status_code == 200
    integration.refresh_from_db()
    assert integration.rate_limit_per_minute == 30


def test_bad_create_incidents_for_is_a_clear_400(as_manager, integration):
    response = as_manager.patch(
        f"/api/v1/integrations/{integration.pk}/",
        {"create_incidents_for": ["critical", "info"]}, format="json",
    )
    assert response.status_code == 400
    assert "create_incidents_for" in response.json()


def test_status_of_incoming_webhook_without_token_cannot_change(as_manager, service):
    hook = Integration.objects.create(name="Grafana", kind="incoming_webhook", service=service)
    url = f"/api/v1/integrations/{hook.pk}/"
    refused = as_manager.patch(url, {"status": "disabled"}, format="json")
    assert refused.status_code == 400
    assert "token" in refused.json()["status"][0]
    IntegrationToken.issue(hook, "prod")
    assert as_manager.patch(url, {"status": "disabled"}, format="json").status_code == 200


def test_kind_of_existing_integration_cannot_change(as_manager, integration):
    response = as_manager.patch(
        f"/api/v1/integrations/{integration.pk}/", {"kind": "email"}, format="json"
    )
    assert response.status_code == 400
    assert "kind" in response.json()


def test_service_lists_destination_ids(as_manager, service):
    body = as_manager.get(f"/api/v1/services/{service.pk}/").json()
    assert body["destinations"] == []
    assert body["team"] == service.team_id


def test_incident_fields_include_alert_count(as_responder, incident, integration):
    Alert.objects.create(integration=integration, incident=incident, message="m", entity_id="db-1")
    Alert.objects.create(integration=integration, incident=incident, message="m", entity_id="db-1")
    body = as_responder.get(f"/api/v1/incidents/{incident.pk}/").json()
    for field in ["id", "number", "unique_id", "title", "summary", "status", "urgency",
                  "severity", "entity_id", "drill", "labels", "room_prefix", "service"]:
        assert field in body
    assert body["alert_count"] == 2
    assert body["number"] == incident.number


@pytest.fixture
def three_incidents(service, team):
    other = Service.objects.create(name="Search", team=team)
    a = lifecycle.open_incident(service=service, title="a", entity_id="web-1")
    b = lifecycle.open_incident(service=service, title="b", entity_id="web-2", drill=True)
    c = lifecycle.open_incident(service=other, title="c", entity_id="web-1")
    lifecycle.resolve(b)
    return a, b, c


def ids(response):
    assert response.status_code == 200, response.content
    return sorted(item["id"] for item in response.json()["results"])


def test_incident_filters(as_responder, three_incidents, service):
    a, b, c = three_incidents
    url = "/api/v1/incidents/"
    assert ids(as_responder.get(url, {"status": "resolved"})) == [b.pk]
    assert ids(as_responder.get(url, {"status": "triggered"})) == sorted([a.pk, c.pk])
    assert ids(as_responder.get(url, {"service": service.pk})) == sorted([a.pk, b.pk])
    assert ids(as_responder.get(url, {"entity_id": "web-1"})) == sorted([a.pk, c.pk])
    assert ids(as_responder.get(url, {"drill": "true"})) == [b.pk]
    assert ids(as_responder.get(url, {"drill": "false"})) == sorted([a.pk, c.pk])


def test_bad_filter_value_is_a_400_not_a_500(as_responder, db):
    response = as_responder.get("/api/v1/incidents/", {"status": "exploded"})
    assert response.status_code == 400
    assert "status" in response.json()


def test_acknowledge_and_resolve_actions(as_responder, incident):
    acked = as_responder.post(f"/api/v1/incidents/{incident.pk}/acknowledge/")
    assert acked.status_code == 200, acked.content
    assert acked.json()["status"] == "acknowledged"
    again = as_responder.post(f"/api/v1/incidents/{incident.pk}/acknowledge/")
    assert again.status_code == 409
    resolved = as_responder.post(f"/api/v1/incidents/{incident.pk}/resolve/")
    assert resolved.json()["status"] == "resolved"
    incident.refresh_from_db()
    assert incident.status == Incident.Status.RESOLVED


def test_note_and_timeline(as_responder, incident, responder):
    created = as_responder.post(
        f"/api/v1/incidents/{incident.pk}/notes/", {"text": "Looking"}, format="json"
    )
    assert created.status_code == 201
    empty = as_responder.post(f"/api/v1/incidents/{incident.pk}/notes/", {}, format="json")
    assert empty.status_code == 400 and "text" in empty.json()
    timeline = as_responder.get(f"/api/v1/incidents/{incident.pk}/timeline/").json()
    assert [e["kind"] for e in timeline] == ["triggered", "note"]
    assert timeline[1]["actor"] == responder.username


def test_status_cannot_be_patched_directly(as_manager, incident):
    response = as_manager.patch(
        f"/api/v1/incidents/{incident.pk}/", {"status": "resolved", "urgency": "low"},
        format="json",
    )
    assert response.status_code == 200
    incident.refresh_from_db()
    assert incident.status == "triggered"
    assert incident.urgency == "low"


def test_alert_detail_shows_payload(as_responder, integration):
    alert = Alert.objects.create(
        integration=integration, message="m", entity_id="e", payload={"cpu": 99}
    )
    body = as_responder.get(f"/api/v1/alerts/{alert.pk}/").json()
    assert body["payload"] == {"cpu": 99}


def test_inbound_event_reprocess_requeues_only_failed_events(as_manager, integration,
                                                              django_capture_on_commit_callbacks,
                                                              monkeypatch):
    queued = []
    monkeypatch.setattr("tocsin.taskqueue.async_task", lambda *a, **k: queued.append(a))
    event = InboundEvent.objects.create(
        integration=integration, source="generic", body=b"{}", status="failed", error="boom"
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = as_manager.post(f"/api/v1/inbound-events/{event.pk}/reprocess/")
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "queued"
    assert queued == [("integrations.processing.process_event", event.pk)]
    refused = as_manager.post(f"/api/v1/inbound-events/{event.pk}/reprocess/")
    assert refused.status_code == 409


def test_inbound_event_shows_raw_body(as_responder, integration):
    event = InboundEvent.objects.create(
        integration=integration, source="generic", body='{"message": "hé"}'.encode()
    )
    body = as_responder.get(f"/api/v1/inbound-events/{event.pk}/").json()
    assert body["body"] == '{"message": "hé"}'
    assert body["trace_id"] == str(event.trace_id)


def test_unknown_api_url_is_json_404(as_responder):
    response = as_responder.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_openapi_schema(as_responder):
    response = as_responder.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert "/api/v1/incidents/{id}/acknowledge/" in schema["paths"]
    assert "/api/v1/integrations/" in schema["paths"]


def test_openapi_schema_generates_without_warnings(db, tmp_path):
    # Warnings mean parts of the schema are guessed or invalid (an empty component name,
    # a view whose model could not be found), which breaks generated clients.
    call_command("spectacular", "--file", str(tmp_path / "schema.yml"), "--fail-on-warn")
    schema = (tmp_path / "schema.yml").read_text()
    for path in ("/api/v1/destinations/{id}/test/", "/api/v1/deliveries/{id}/resend/",
                 "/api/v1/notification-settings/", "/api/v1/integrations/{integration_pk}/rules/"):
        assert path in schema


def test_deleting_a_team_that_still_has_services_is_a_409_naming_them(as_manager, team,
                                                                      service):
    response = as_manager.delete(f"/api/v1/teams/{team.pk}/")
    assert response.status_code == 409
    assert response.json() == {"detail": "Cannot delete this object: 1 services still refer "
                                         "to it. Delete them or move them elsewhere first."}
    assert Team.objects.filter(pk=team.pk).exists()


def test_deleting_a_service_with_integrations_is_a_409_not_a_500(as_manager, service,
                                                                 integration):
    response = as_manager.delete(f"/api/v1/services/{service.pk}/")
    assert response.status_code == 409
    assert "1 integrations" in response.json()["detail"]
    assert Service.objects.filter(pk=service.pk).exists()
