"""What each group may do through the API (docs/roles.md)."""

import pytest
from django.contrib.auth.models import Group, Permission

from integrations.models import InboundEvent
from tests.conftest import api_client_for, make_user


@pytest.fixture
def nobody(db):
    return make_user("nora")


def test_migration_creates_the_three_groups(db):
    assert set(Group.objects.values_list("name", flat=True)) >= {
        "Responder", "Manager", "Administrator"
    }


@pytest.mark.parametrize("path", ["incidents", "alerts", "services", "teams", "integrations",
                                  "inbound-events"])
def test_responder_reads_the_incident_world(responder, path):
    assert api_client_for(responder).get(f"/api/v1/{path}/").status_code == 200


def test_user_without_group_reads_nothing(nobody, incident):
    client = api_client_for(nobody)
    assert client.get("/api/v1/incidents/").status_code == 403
    assert client.post(f"/api/v1/incidents/{incident.pk}/acknowledge/").status_code == 403


def test_responder_acknowledges_resolves_and_comments(responder, incident):
    client = api_client_for(responder)
    assert client.post(f"/api/v1/incidents/{incident.pk}/acknowledge/").status_code == 200
    assert client.post(f"/api/v1/incidents/{incident.pk}/notes/", {"text": "x"}).status_code == 201
    assert client.post(f"/api/v1/incidents/{incident.pk}/resolve/").status_code == 200


def test_responder_cannot_manage_services_or_integrations(responder, team, service, integration):
    client = api_client_for(responder)
    assert client.post("/api/v1/services/", {"name": "X", "team": team.pk}).status_code == 403
    assert client.patch(
        f"/api/v1/integrations/{integration.pk}/", {"status": "disabled"}, format="json"
    ).status_code == 403
    assert client.delete(f"/api/v1/services/{service.pk}/").status_code == 403


def test_responder_cannot_edit_incident_fields(responder, incident):
    response = api_client_for(responder).patch(
        f"/api/v1/incidents/{incident.pk}/", {"title": "renamed"}, format="json"
    )
    assert response.status_code == 403


def test_responder_cannot_reprocess_inbound_events(responder, integration):
    event = InboundEvent.objects.create(integration=integration, source="generic", body=b"{}",
                                        status="failed")
    response = api_client_for(responder).post(f"/api/v1/inbound-events/{event.pk}/reprocess/")
    assert response.status_code == 403


def test_manager_manages_teams_services_integrations(manager, team, service, integration):
    client = api_client_for(manager)
    assert client.post("/api/v1/teams/", {"name": "New"}).status_code == 201
    assert client.post("/api/v1/services/", {"name": "X", "team": team.pk}).status_code == 201
    assert client.patch(
        f"/api/v1/integrations/{integration.pk}/", {"description": "d"}, format="json"
    ).status_code == 200
    assert client.delete(f"/api/v1/integrations/{integration.pk}/").status_code == 204


def test_manager_edits_incident_fields(manager, incident):
    response = api_client_for(manager).patch(
        f"/api/v1/incidents/{incident.pk}/", {"title": "renamed"}, format="json"
    )
    assert response.status_code == 200


def test_administrator_has_every_permission(administrator):
    missing = [
        f"{p.content_type.app_label}.{p.codename}"
        for p in Permission.objects.select_related("content_type")
        if not administrator.has_perm(f"{p.content_type.app_label}.{p.codename}")
    ]
    assert missing == []


def test_administrator_can_do_what_a_manager_can(administrator, team):
    client = api_client_for(administrator)
    assert client.post("/api/v1/services/", {"name": "X", "team": team.pk}).status_code == 201
