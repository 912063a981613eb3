"""The admin pages render for each group, and the actions work (docs/roles.md)."""

import pytest
from django.urls import reverse

from incidents import lifecycle
from integrations.models import Alert, InboundEvent, Integration
from tests.conftest import make_user


@pytest.fixture
def world(service, integration, incident):
    event = InboundEvent.objects.create(
        integration=integration, source="generic", body=b'{"message": "x"}', status="failed",
        error="KeyError: 'message'",
    )
    alert = Alert.objects.create(
        integration=integration, incident=incident, inbound_event=event, message="x",
        entity_id="db-1",
    )
    mail = Integration.objects.create(name="Mailbox", kind="email", service=service)
    lifecycle.add_note(incident, "Checked the disks")
    return {
        "incidents/incident": incident, "incidents/service": service,
        "incidents/team": service.team, "integrations/integration": integration,
        "integrations/inboundevent": event, "integrations/alert": alert, "mail": mail,
    }


PAGES_FOR_EVERY_ROLE = [
    "incidents/incident", "incidents/service", "incidents/team", "integrations/integration",
    "integrations/inboundevent", "integrations/alert",
]


@pytest.mark.parametrize("role", ["Responder", "Manager", "Administrator"])
@pytest.mark.parametrize("page", PAGES_FOR_EVERY_ROLE)
def test_list_and_detail_pages_render_for_each_role(client, world, role, page):
    client.force_login(make_user(role.lower(), role))
    app, model = page.split("/")
    listing = client.get(reverse(f"admin:{app}_{model}_changelist"))
    assert listing.status_code == 200
    detail = client.get(reverse(f"admin:{app}_{model}_change", args=[world[page].pk]))
    assert detail.status_code == 200


def test_admin_index_lists_what_a_responder_may_see(client, world, responder):
    client.force_login(responder)
    page = client.get("/admin/").content.decode()
    assert "Incidents" in page
    assert "Users" not in page


def test_incident_page_shows_timeline_and_actions(client, world, responder):
    client.force_login(responder)
    incident = world["incidents/incident"]
    page = client.get(reverse("admin:incidents_incident_change", args=[incident.pk]))
    html = page.content.decode()
    assert "Checked the disks" in html
    assert "tocsin-badge--triggered" in html
    assert reverse("admin:incidents_incident_acknowledge", args=[incident.pk]) in html
    assert "Add a note" in html


def test_acknowledge_button_needs_post_and_permission(client, world):
    incident = world["incidents/incident"]
    url = reverse("admin:incidents_incident_acknowledge", args=[incident.pk])
    client.force_login(make_user("viewer", None))
    assert client.post(url).status_code == 403
    client.force_login(make_user("rita2", "Responder"))
    assert client.get(url).status_code == 405
    assert client.post(url).status_code == 302
    incident.refresh_from_db()
    assert incident.status == "acknowledged"


def test_resolve_selected_action(client, world, responder, service):
    second = lifecycle.open_incident(service=service, title="b", entity_id="b")
    client.force_login(responder)
    response = client.post(
        reverse("admin:incidents_incident_changelist"),
        {"action": "resolve_selected", "_selected_action": [world["incidents/incident"].pk,
                                                             second.pk]},
    )
    assert response.status_code == 302
    second.refresh_from_db()
    assert second.status == "resolved"


def test_integration_page_shows_webhook_url_sample_and_curl(client, world, manager):
    client.force_login(manager)
    integration = world["integrations/integration"]
    html = client.get(
        reverse("admin:integrations_integration_change", args=[integration.pk])
    ).content.decode()
    assert integration.webhook_url in html
    assert 'data-copy-target="tocsin-webhook-url"' in html
    assert "curl -X POST" in html
    assert "alert_type" in html


def test_email_integration_page_shows_address(client, world, manager):
    client.force_login(manager)
    mail = world["mail"]
    html = client.get(
        reverse("admin:integrations_integration_change", args=[mail.pk])
    ).content.decode()
    assert mail.email_address in html
    assert "severity:" in html


def test_manager_creates_integration_in_admin(client, world, manager, service):
    client.force_login(manager)
    response = client.post(reverse("admin:integrations_integration_add"), {
        "name": "Alertmanager", "kind": "generic", "service": service.pk, "status": "enabled",
        "tags": "[]", "create_incidents_for": '["critical", "error"]',
        "rate_limit_per_minute": 120, "default_severity": "major",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    created = Integration.objects.get(name="Alertmanager")
    assert created.create_incidents_for == ["critical", "error"]
    assert created.rate_limit_per_minute == 120


def test_reprocess_action_requeues_failed_events(client, world, manager, monkeypatch,
                                                 django_capture_on_commit_callbacks):
    queued = []
    monkeypatch.setattr("tocsin.taskqueue.async_task", lambda *a, **k: queued.append(a))
    event = world["integrations/inboundevent"]
    client.force_login(manager)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:integrations_inboundevent_changelist"),
                    {"action": "reprocess_selected", "_selected_action": [event.pk]})
    event.refresh_from_db()
    assert event.status == "queued"
    assert event.error == ""
    assert len(queued) == 1


def test_responder_has_no_reprocess_action(client, world, responder):
    client.force_login(responder)
    html = client.get(reverse("admin:integrations_inboundevent_changelist")).content.decode()
    assert "reprocess_selected" not in html
