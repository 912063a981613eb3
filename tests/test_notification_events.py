"""Platform Actions from integrations, and stakeholder messages on generic alerts."""

import json

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.urls import reverse

from incidents.models import Team
from integrations.models import Integration, IntegrationToken
from notifications.models import Notification, NotificationSettings
from tests.conftest import api_client_for

OPS = ["ops@example.com"]


@pytest.fixture
def platform_list(db):
    record = NotificationSettings.load()
    record.default_recipients = OPS
    record.platform_actions_override = True
    record.platform_actions_recipients = ["platform@example.com"]
    record.save()
    return record


def subjects() -> list[str]:
    return [m.subject for m in mail.outbox]


def test_integration_created_enabled_disabled_and_deleted_are_platform_actions(
    platform_list, service, inline, manager
):
    client = api_client_for(manager)
    created = inline(client.post, "/api/v1/integrations/",
                     {"name": "Grafana", "kind": "generic", "service": service.pk},
                     format="json")
    integration_id = created.json()["id"]
    url = f"/api/v1/integrations/{integration_id}/"
    inline(client.patch, url, {"status": "disabled"}, format="json")
    inline(client.patch, url, {"description": "no status change"}, format="json")
    inline(client.patch, url, {"status": "enabled"}, format="json")
    inline(client.delete, url)
    assert subjects() == [
        "[Tocsin] Integration Grafana was created",
        "[Tocsin] Integration Grafana was disabled",
        "[Tocsin] Integration Grafana was enabled",
        "[Tocsin] Integration Grafana was deleted",
    ]
    assert all(m.to == ["platform@example.com"] for m in mail.outbox)
    assert "By: max" in mail.outbox[1].body
    assert "Checkout" in mail.outbox[0].body


def test_bulk_disable_in_the_admin_reports_each_changed_integration(
    platform_list, integration, client, manager, inline
):
    client.force_login(manager)
    mail.outbox.clear()
    changelist = reverse("admin:integrations_integration_changelist")
    inline(client.post, changelist, {"action": "disable_selected",
                                     "_selected_action": [integration.pk]})
    inline(client.post, changelist, {"action": "disable_selected",
                                     "_selected_action": [integration.pk]})
    assert subjects() == ["[Tocsin] Integration Prometheus was disabled"]


def test_revoking_a_token_is_a_platform_action_once(platform_list, service, inline):
    hook = Integration.objects.create(name="Grafana IRM", kind="incoming_webhook",
                                      service=service)
    token, _ = IntegrationToken.issue(hook, name="grafana")
    mail.outbox.clear()
    inline(token.revoke)
    inline(token.revoke)
    [message] = mail.outbox
    assert message.subject == "[Tocsin] A token of integration Grafana IRM was revoked"
    assert "grafana" in message.body


# --- stakeholders ------------------------------------------------------------------------

@pytest.fixture
def people(db):
    alice = User.objects.create_user("alice", "alice@example.com")
    bob = User.objects.create_user("bob", "bob@example.com")
    User.objects.create_user("nomail", "")
    team = Team.objects.create(name="Payments")
    team.members.add(bob)
    return {"alice": alice, "bob": bob, "team": team}


@pytest.fixture
def example_com(settings):
    """Plain stakeholder addresses at example.com may be mailed (docs/notifications.md)."""
    settings.TOCSIN_STAKEHOLDER_EMAIL_DOMAINS = ["example.com"]


def post_alert(client, integration, body, capture):
    with capture(execute=True):
        return client.post(f"/api/events/{integration.key}/", data=json.dumps(body),
                           content_type="application/json")


def test_stakeholders_of_an_opening_alert_get_the_message_in_their_timezone(
    client, integration, people, example_com, run_tasks, deliver_inline,
    django_capture_on_commit_callbacks,
):
    body = {
        "message": "Checkout down", "alert_type": "critical", "entity_id": "checkout",
        "stakeholders": {"users": ["alice", "nomail", "ghost"], "teams": ["Payments", 999],
                         "emails": ["cfo@example.com", "not-an-email"]},
        "stakeholders_comms": {"subject": "Checkout is down", "body": "We are on it.",
                               "timezone": "Asia/Tokyo", "created_by": "Incident commander"},
    }
    response = post_alert(client, integration, body, django_capture_on_commit_callbacks)
    assert response.status_code == 200
    [message] = [m for m in mail.outbox if m.subject == "Checkout is down"]
    assert message.to == []
    assert sorted(message.bcc) == ["alice@example.com", "bob@example.com", "cfo@example.com"]
    assert "We are on it." in message.body and "Incident commander" in message.body
    assert "JST" in message.body  # the start time, rendered in Asia/Tokyo

    notification = Notification.objects.get(type="stakeholders")
    reasons = {json.dumps(i, sort_keys=True) for i in notification.ignored}
    assert len(notification.ignored) == 4
    assert any("ghost" in r for r in reasons) and any("not-an-email" in r for r in reasons)
    incident = notification.incident
    note = incident.timeline.get(kind="note")
    assert "Stakeholder message sent to 3 recipient(s)" in note.message
    assert "ghost (no active user with an email address)" in note.message


def test_an_alert_that_joins_an_incident_sends_no_second_stakeholder_message(
    client, integration, people, example_com, run_tasks, deliver_inline,
    django_capture_on_commit_callbacks,
):
    body = {"message": "down", "alert_type": "critical", "entity_id": "x",
            "stakeholders": {"emails": ["cfo@example.com"]},
            "stakeholders_comms": {"subject": "Heads up", "body": "b"}}
    post_alert(client, integration, body, django_capture_on_commit_callbacks)
    post_alert(client, integration, body, django_capture_on_commit_callbacks)
    assert [m.subject for m in mail.outbox].count("Heads up") == 1


def test_an_unknown_timezone_falls_back_to_utc_and_is_recorded(
    client, integration, example_com, run_tasks, deliver_inline, django_capture_on_commit_callbacks
):
    body = {"message": "down", "alert_type": "critical",
            "stakeholders": {"emails": ["cfo@example.com"]},
            "stakeholders_comms": {"subject": "Heads up", "timezone": "Mars/Olympus"}}
    post_alert(client, integration, body, django_capture_on_commit_callbacks)
    [message] = mail.outbox
    assert "UTC" in message.body
    notification = Notification.objects.get()
    assert notification.ignored == [{"timezone": "Mars/Olympus",
                                     "reason": "unknown timezone; UTC used"}]


def test_no_reachable_stakeholder_sends_nothing_but_says_so(
    client, integration, run_tasks, deliver_inline, django_capture_on_commit_callbacks
):
    body = {"message": "down", "alert_type": "critical",
            "stakeholders": {"users": ["ghost"]}, "stakeholders_comms": {"subject": "s"}}
    post_alert(client, integration, body, django_capture_on_commit_callbacks)
    assert mail.outbox == [] and not Notification.objects.exists()
    incident = Integration.objects.get().alerts.get().incident
    assert "No stakeholder could be reached" in incident.timeline.get(kind="note").message


def test_changing_the_mapping_or_the_rules_is_a_platform_action(platform_list, integration,
                                                                manager, inline):
    client = api_client_for(manager)
    mapping = {"direct": {"message": {"path": "title"}}}
    inline(client.patch, f"/api/v1/integrations/{integration.pk}/", {"mapping": mapping},
           format="json")
    rule = {"name": "Quiet nights", "conditions": [
        {"field": "alert_type", "op": "equals", "value": "warning"}],
        "actions": [{"type": "suppress"}], "enabled": True}
    created = inline(client.post, f"/api/v1/integrations/{integration.pk}/rules/", rule,
                     format="json")
    assert created.status_code == 201, created.content
    assert subjects() == [
        "[Tocsin] The payload mapping of integration Prometheus changed",
        "[Tocsin] The alert rules of integration Prometheus changed",
    ]
    assert all("By: max" in m.body for m in mail.outbox)
