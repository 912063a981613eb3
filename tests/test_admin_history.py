"""Admin history: every admin action and page that changes something writes a LogEntry,
as Django's own add, change and delete do, naming what was done and never a secret
(docs/roles.md). The admin's own pages load their object as the change page does."""

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.urls import reverse

from destinations.models import Delivery, Destination
from incidents import lifecycle
from integrations.models import InboundEvent, Integration, IntegrationToken
from notifications.models import Notification
from tests.conftest import make_user
from tests.delivery_helpers import make_destination


def history(obj) -> list[tuple[str, int, str]]:
    """(user, action flag, message) of an object's admin history, oldest first."""
    entries = LogEntry.objects.filter(
        content_type__app_label=obj._meta.app_label, content_type__model=obj._meta.model_name,
        object_id=str(obj.pk),
    ).select_related("user").order_by("action_time", "pk")
    return [(e.user.username, e.action_flag, e.get_change_message()) for e in entries]


def changelist_action(client, model: str, action: str, objects):
    return client.post(reverse(f"admin:{model}_changelist"),
                       {"action": action, "_selected_action": [o.pk for o in objects]})


@pytest.fixture
def hook(service):
    return Integration.objects.create(name="Grafana", kind="incoming_webhook", service=service)


@pytest.fixture
def mailbox(service):
    return Integration.objects.create(name="Nagios mail", kind="email", service=service)


# --- incidents ---------------------------------------------------------------------------

def test_acknowledge_button_records_who_acknowledged(client, responder, incident):
    client.force_login(responder)
    client.post(reverse("admin:incidents_incident_acknowledge", args=[incident.pk]))
    incident.refresh_from_db()
    assert incident.status == "acknowledged"
    assert history(incident) == [("rita", CHANGE, "Acknowledged.")]


def test_acknowledging_an_acknowledged_incident_records_nothing(client, responder, incident):
    lifecycle.acknowledge(incident)
    client.force_login(responder)
    client.post(reverse("admin:incidents_incident_acknowledge", args=[incident.pk]))
    assert history(incident) == []


def test_resolve_action_records_only_the_incidents_it_resolved(client, responder, service,
                                                                incident):
    already = lifecycle.open_incident(service=service, title="b", entity_id="b")
    lifecycle.resolve(already)
    client.force_login(responder)
    changelist_action(client, "incidents_incident", "resolve_selected", [incident, already])
    assert history(incident) == [("rita", CHANGE, "Resolved.")]
    assert history(already) == []


def test_a_note_is_recorded_without_its_text(client, responder, incident):
    client.force_login(responder)
    client.post(reverse("admin:incidents_incident_note", args=[incident.pk]),
                {"text": "Rebooted db-1"})
    assert incident.timeline.filter(message__contains="Rebooted db-1").exists()
    assert history(incident) == [("rita", CHANGE, "Added a note.")]


def test_an_incident_that_does_not_exist_goes_back_to_the_index(client, responder):
    client.force_login(responder)
    response = client.post(reverse("admin:incidents_incident_acknowledge", args=[9999]),
                           follow=True)
    assert response.redirect_chain == [(reverse("admin:index"), 302)]
    assert "with ID “9999” doesn’t exist" in response.content.decode()
    assert not LogEntry.objects.exists()


def test_without_the_permission_a_missing_incident_is_forbidden_too(client, db):
    # Like the change page: the 403 comes first, so it does not tell which ids exist.
    client.force_login(make_user("viewer", None))
    url = reverse("admin:incidents_incident_acknowledge", args=[9999])
    assert client.post(url).status_code == 403


# --- integrations and tokens -------------------------------------------------------------

def test_regenerating_an_address_is_recorded_without_either_address(client, manager,
                                                                    mailbox):
    old = mailbox.email_address
    client.force_login(manager)
    client.post(reverse("admin:integrations_integration_regenerate_address",
                        args=[mailbox.pk]))
    mailbox.refresh_from_db()
    assert mailbox.email_address != old
    assert history(mailbox) == [("max", CHANGE, "Regenerated the email address.")]
    stored = " ".join(LogEntry.objects.values_list("change_message", flat=True))
    assert old not in stored and mailbox.email_address not in stored


def test_only_email_integrations_have_an_address_to_regenerate(client, manager, hook):
    client.force_login(manager)
    url = reverse("admin:integrations_integration_regenerate_address", args=[hook.pk])
    assert client.post(url).status_code == 404
    assert not LogEntry.objects.exists()


def test_a_created_token_is_recorded_by_name_never_by_value(client, manager, hook):
    client.force_login(manager)
    html = client.post(reverse("admin:integrations_integration_new_token", args=[hook.pk]),
                       {"name": "ci"}).content.decode()
    token = IntegrationToken.objects.get(integration=hook)
    start = html.index('id="tocsin-new-token">') + len('id="tocsin-new-token">')
    plaintext = html[start:html.index("</code>", start)]
    assert history(token) == [("max", ADDITION, "Created token 'ci'.")]
    assert plaintext not in " ".join(
        LogEntry.objects.values_list("change_message", "object_repr").get())


def test_revoking_records_only_tokens_that_were_active(client, manager, hook):
    active, _ = IntegrationToken.issue(hook, "prod")
    revoked, _ = IntegrationToken.issue(hook, "old")
    revoked.revoke()
    client.force_login(manager)
    changelist_action(client, "integrations_integrationtoken", "revoke_selected",
                      [active, revoked])
    active.refresh_from_db()
    assert active.revoked_at is not None
    assert history(active) == [("max", CHANGE, "Revoked.")]
    assert history(revoked) == []


def test_disabling_records_the_integrations_it_changed(client, manager, integration,
                                                      mailbox):
    mailbox.status = Integration.Status.DISABLED
    mailbox.save()
    client.force_login(manager)
    changelist_action(client, "integrations_integration", "disable_selected",
                      [integration, mailbox])
    integration.refresh_from_db()
    assert integration.status == "disabled"
    assert history(integration) == [("max", CHANGE, "Disabled.")]
    assert history(mailbox) == []


def test_reprocessing_records_the_failed_events_queued_again(client, manager, integration):
    failed = InboundEvent.objects.create(integration=integration, source="generic",
                                         body=b"{}", status="failed", error="KeyError")
    done = InboundEvent.objects.create(integration=integration, source="generic",
                                       body=b"{}", status="completed")
    client.force_login(manager)
    # The hand-off to the worker runs on commit, which a test transaction never reaches.
    changelist_action(client, "integrations_inboundevent", "reprocess_selected",
                      [failed, done])
    failed.refresh_from_db()
    assert failed.status == "queued"
    assert history(failed) == [("max", CHANGE, "Queued for reprocessing.")]
    assert history(done) == []


# --- destinations, deliveries, notifications ---------------------------------------------

def test_send_test_button_records_the_test(client, manager, http_sink):
    hook = Destination.objects.create(name="hook", kind="webhook",
                                      config={"url": f"{http_sink.url}/in"})
    client.force_login(manager)
    client.post(reverse("admin:destinations_destination_send_test", args=[hook.pk]))
    assert len(http_sink.requests) == 1
    assert history(hook) == [("max", CHANGE, "Sent a test.")]


def test_resend_button_records_the_delivery(client, manager, service, incident, monkeypatch,
                                            django_capture_on_commit_callbacks):
    queued = []
    monkeypatch.setattr("tocsin.taskqueue.async_task", lambda *a, **k: queued.append(a[1]))
    hook = make_destination(service, "webhook", {"url": "https://example.com/1"})
    failed = Delivery.objects.create(destination=hook, incident=incident, event="triggered",
                                     status="failed", attempts=1)
    client.force_login(manager)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:destinations_delivery_resend", args=[failed.pk]))
    failed.refresh_from_db()
    assert failed.status == "pending" and queued == [failed.pk]
    assert history(failed) == [("max", CHANGE, "Re-sent delivery.")]


def test_resend_action_records_each_notification_queued_again(client, administrator,
                                                               monkeypatch):
    monkeypatch.setattr("tocsin.taskqueue.async_task", lambda *a, **k: None)
    failed = Notification.objects.create(
        type="incidents", event="incident.triggered", dedup_key="k1", subject="Disk full",
        body_text="b", recipients=["ops@example.com"], status="failed", attempts=1,
    )
    client.force_login(administrator)
    changelist_action(client, "notifications_notification", "resend_selected", [failed])
    failed.refresh_from_db()
    assert failed.status == "pending"
    assert history(failed) == [("ada", CHANGE, "Re-sent notification.")]


# --- the read-only logs ------------------------------------------------------------------

@pytest.fixture
def logs(service, integration, incident):
    """One record of each log the system writes."""
    hook = make_destination(service, "webhook", {"url": "https://example.com/1"})
    return {
        "integrations_inboundevent": InboundEvent.objects.create(
            integration=integration, source="generic", body=b"{}", status="failed"),
        "destinations_delivery": Delivery.objects.create(
            destination=hook, incident=incident, event="triggered", status="failed"),
        "notifications_notification": Notification.objects.create(
            type="incidents", event="incident.triggered", dedup_key="k1", subject="s",
            body_text="b", recipients=["ops@example.com"], status="failed"),
    }


@pytest.mark.parametrize("model", ["integrations_inboundevent", "destinations_delivery",
                                   "notifications_notification"])
def test_even_a_superuser_cannot_add_or_edit_a_log_record(client, logs, model):
    root = make_user("su", None)
    root.is_superuser = True
    root.save()
    client.force_login(root)
    record = logs[model]
    change = reverse(f"admin:{model}_change", args=[record.pk])
    page = client.get(change)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert client.get(reverse(f"admin:{model}_add")).status_code == 403
    assert client.post(change, {"status": "sent"}).status_code == 403
    record.refresh_from_db()
    assert record.status == "failed"


def test_a_manager_reprocesses_events_without_being_able_to_edit_them(client, logs, manager):
    client.force_login(manager)
    event = logs["integrations_inboundevent"]
    html = client.get(reverse("admin:integrations_inboundevent_changelist")).content.decode()
    assert "reprocess_selected" in html
    page = client.get(reverse("admin:integrations_inboundevent_change", args=[event.pk]))
    assert 'name="_save"' not in page.content.decode()
