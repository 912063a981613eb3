"""The generic JSON webhook through HTTP (docs/generic-webhook.md) and the grouping rules."""

import pytest

from incidents import lifecycle
from incidents.models import SLA, EscalationPolicy, Incident, Priority, Tag
from integrations.models import Alert, InboundEvent
from integrations.processing import process_event
from tests.ingest_helpers import post_event, process_inline, run_tasks  # noqa: F401 (fixture)


@pytest.fixture
def send(client, integration, run_tasks, django_capture_on_commit_callbacks):  # noqa: F811
    """POST an alert and process it as the worker would; returns the status document."""

    def _send(body, target=None):
        response = post_event(client, target or integration, body,
                              capture=django_capture_on_commit_callbacks)
        assert response.status_code == 200, response.content
        trace_id = response.json()["trace_id"]
        return client.get(f"/api/alert/status/{trace_id}/").json()

    return _send


def incidents_for(entity_id):
    return list(Incident.objects.filter(entity_id=entity_id).order_by("number"))


def test_accepted_alert_is_stored_before_processing(client, integration):
    response = post_event(client, integration, {"message": "Disk full"})
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "success"
    event = InboundEvent.objects.get(trace_id=body["trace_id"])
    assert event.status == "queued"
    assert bytes(event.body) == b'{"message": "Disk full"}'
    assert event.headers["Content-Type"] == "application/json"
    status = client.get(f"/api/alert/status/{body['trace_id']}/").json()
    assert status == {"status": "queued"}


def test_critical_alert_opens_an_incident(send, integration):
    status = send({"message": "DB down", "alert_type": "critical", "entity_id": "db",
                   "summary": "primary unreachable"})
    incident = Incident.objects.get(entity_id="db")
    assert status["status"] == "completed"
    assert status["is_incident_created"] is True
    assert status["suppressed"] is False
    assert status["incident"] == {"incident_number": incident.number,
                                  "unique_id": incident.unique_id}
    assert status["integration"] == {"name": integration.name}
    assert Alert.objects.get(pk=status["alert"]).incident == incident
    assert (incident.title, incident.summary, incident.status) == (
        "DB down", "primary unreachable", "triggered")


@pytest.mark.parametrize("alert_type", ["error", "warning", "info"])
def test_non_critical_types_do_not_open_incidents_by_default(send, alert_type):
    status = send({"message": "m", "alert_type": alert_type, "entity_id": "x"})
    assert status["status"] == "completed"
    assert status["incident"] is None
    assert status["is_incident_created"] is False
    assert Alert.objects.filter(pk=status["alert"]).exists()


@pytest.mark.parametrize("alert_type", ["error", "warning"])
def test_create_incidents_for_lets_other_types_open_incidents(send, integration, alert_type):
    integration.create_incidents_for = ["critical", alert_type]
    integration.save()
    status = send({"message": "m", "alert_type": alert_type, "entity_id": "x"})
    assert status["is_incident_created"] is True


def test_critical_is_not_opening_when_removed_from_create_incidents_for(send, integration):
    integration.create_incidents_for = ["error"]
    integration.save()
    assert send({"message": "m", "alert_type": "critical"})["incident"] is None


def test_alerts_with_same_entity_join_the_open_incident(send):
    first = send({"message": "a", "alert_type": "critical", "entity_id": "web"})
    second = send({"message": "b", "alert_type": "critical", "entity_id": "web"})
    info = send({"message": "c", "alert_type": "info", "entity_id": "web"})
    assert first["incident"] == second["incident"] == info["incident"]
    assert second["is_incident_created"] is False
    [incident] = incidents_for("web")
    assert incident.alerts.count() == 3
    assert incident.timeline.filter(kind="alert").count() == 3


def test_acknowledged_alert_acknowledges_open_incident(send):
    send({"message": "a", "alert_type": "critical", "entity_id": "web"})
    status = send({"message": "ack", "alert_type": "acknowledged", "entity_id": "web"})
    [incident] = incidents_for("web")
    assert incident.status == "acknowledged"
    assert status["incident"]["incident_number"] == incident.number


def test_resolved_alert_resolves_open_incident_and_next_alert_opens_new_one(send):
    send({"message": "a", "alert_type": "critical", "entity_id": "web"})
    send({"message": "ok", "alert_type": "resolved", "entity_id": "web"})
    again = send({"message": "again", "alert_type": "critical", "entity_id": "web"})
    old, new = incidents_for("web")
    assert old.status == "resolved" and old.resolved_at is not None
    assert new.status == "triggered"
    assert again["incident"]["incident_number"] == new.number
    assert new.number == old.number + 1


@pytest.mark.parametrize("alert_type", ["acknowledged", "resolved"])
def test_ack_or_resolve_without_open_incident_is_stored_and_changes_nothing(send, alert_type):
    status = send({"message": "m", "alert_type": alert_type, "entity_id": "none"})
    assert status["status"] == "completed"
    assert status["incident"] is None
    assert Incident.objects.count() == 0
    assert Alert.objects.filter(entity_id="none").count() == 1


def test_suppressed_alert_is_stored_but_opens_nothing(send):
    status = send({"message": "m", "alert_type": "critical", "entity_id": "s",
                   "suppressed": True})
    assert status["suppressed"] is True
    assert status["incident"] is None
    assert Incident.objects.count() == 0
    assert Alert.objects.get(pk=status["alert"]).suppressed is True


def test_suppressed_alert_does_not_join_or_change_an_open_incident(send):
    send({"message": "a", "alert_type": "critical", "entity_id": "s"})
    send({"message": "r", "alert_type": "resolved", "entity_id": "s", "suppressed": True})
    [incident] = incidents_for("s")
    assert incident.status == "triggered"
    assert incident.alerts.count() == 1


def test_missing_entity_id_is_generated_so_alerts_do_not_group(send):
    first = send({"message": "a", "alert_type": "critical"})
    second = send({"message": "a", "alert_type": "critical"})
    assert first["incident"] != second["incident"]
    assert Alert.objects.get(pk=first["alert"]).entity_id


def test_numeric_entity_id_groups_with_its_text_form(send):
    first = send({"message": "a", "alert_type": "critical", "entity_id": 42})
    second = send({"message": "b", "alert_type": "critical", "entity_id": "42"})
    assert first["incident"] == second["incident"]
    assert Alert.objects.get(pk=first["alert"]).entity_id == "42"


def test_ids_are_resolved_when_valid_and_ignored_otherwise(send, service):
    priority = Priority.objects.create(name="P1")
    sla = SLA.objects.create(name="Gold")
    policy = EscalationPolicy.objects.create(name="Primary", team=service.team)
    tag = Tag.objects.create(name="db")
    send({"message": "a", "alert_type": "critical", "entity_id": "ok",
          "priority": priority.pk, "sla": str(sla.pk), "escalation_policy": policy.pk,
          "tags": [tag.pk, 9999, "junk"]})
    send({"message": "b", "alert_type": "critical", "entity_id": "bad",
          "priority": "nope", "sla": 9999, "escalation_policy": {"x": 1}})
    [good] = incidents_for("ok")
    [bad] = incidents_for("bad")
    assert (good.priority, good.sla, good.escalation_policy) == (priority, sla, policy)
    assert list(good.tags.all()) == [tag]
    assert (bad.priority, bad.sla, bad.escalation_policy) == (None, None, None)


@pytest.mark.parametrize("odd", [
    "²", "١٢", "99999999999999999999", 2**64, "9223372036854775808", "-3", "--1", "1_0",
])
def test_ids_that_are_not_ascii_digits_or_out_of_range_are_ignored_as_unknown(
    send, service, odd
):
    # "²" and "١٢" pass str.isdigit but int() refuses the first; past 2**63 SQLite refuses
    # to compare. Either failed the event after the 200.
    tag = Tag.objects.create(name="db")
    status = send({"message": "a", "alert_type": "critical", "entity_id": "odd",
                   "priority": odd, "sla": odd, "escalation_policy": odd,
                   "tags": [odd, tag.pk]})
    assert status["status"] == "completed", status
    [incident] = incidents_for("odd")
    assert (incident.priority, incident.sla, incident.escalation_policy) == (None, None, None)
    assert list(incident.tags.all()) == [tag]
    assert InboundEvent.objects.get().status == "completed"


def test_a_tag_or_priority_named_like_a_number_is_still_found_by_name(send):
    squared = Tag.objects.create(name="²")
    huge = Priority.objects.create(name="99999999999999999999")
    send({"message": "a", "alert_type": "critical", "entity_id": "named",
          "priority": "99999999999999999999", "tags": ["²"]})
    [incident] = incidents_for("named")
    assert incident.priority == huge
    assert list(incident.tags.all()) == [squared]


def test_payload_urls_and_stakeholders_are_kept(send):
    body = {
        "message": "a", "payload": {"cpu": 97, "host": "web-1"},
        "urls": [{"link_url": "https://grafana.example/d/1", "link_text": "Dashboard"}],
        "stakeholders": {"users": ["ann"], "teams": [], "emails": ["boss@example.com"]},
        "stakeholders_comms": {"subject": "S", "body": "B", "timezone": "Europe/Paris"},
    }
    alert = Alert.objects.get(pk=send(body)["alert"])
    assert alert.payload == {"cpu": 97, "host": "web-1"}
    assert alert.urls == body["urls"]
    assert alert.extra["stakeholders"]["emails"] == ["boss@example.com"]
    assert alert.extra["stakeholders_comms"]["timezone"] == "Europe/Paris"


def test_alert_type_is_case_insensitive(send):
    assert send({"message": "a", "alert_type": "CRITICAL"})["is_incident_created"] is True


def test_failed_event_keeps_error_and_completes_when_reprocessed(
    client, integration, run_tasks, django_capture_on_commit_callbacks, monkeypatch,  # noqa: F811
    manager,
):
    def broken(alert):
        raise RuntimeError("grouping store unavailable")

    monkeypatch.setattr("integrations.grouping.group_alert", broken)
    response = post_event(client, integration, {"message": "a", "alert_type": "critical"},
                          capture=django_capture_on_commit_callbacks)
    trace_id = response.json()["trace_id"]
    status = client.get(f"/api/alert/status/{trace_id}/").json()
    assert status == {"status": "failed", "error": "RuntimeError: grouping store unavailable"}
    event = InboundEvent.objects.get(trace_id=trace_id)
    assert bytes(event.body) and not Alert.objects.exists()

    monkeypatch.undo()
    monkeypatch.setattr("tocsin.taskqueue.async_task", process_inline([]))
    client.force_login(manager)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/admin/integrations/inboundevent/",
                    {"action": "reprocess_selected", "_selected_action": [event.pk]})
    status = client.get(f"/api/alert/status/{trace_id}/").json()
    assert status["status"] == "completed"
    assert status["is_incident_created"] is True


def test_duplicate_task_for_a_completed_event_does_nothing(send):
    status = send({"message": "a", "alert_type": "critical"})
    event = InboundEvent.objects.get(alert__pk=status["alert"])
    assert process_event(event.pk) == "skipped"
    assert Alert.objects.count() == 1


def test_unknown_trace_id_is_404(client, db):
    response = client.get("/api/alert/status/0b0f5d3c-2a9e-4c59-9b7d-3c4f1f0e6a11/")
    assert response.status_code == 404
    assert "message" in response.json()
    assert client.get("/api/alert/status/not-a-uuid/").status_code == 404


def test_open_incident_from_another_path_is_joined(send, integration):
    existing = lifecycle.open_incident(service=integration.service, title="t", entity_id="e")
    status = send({"message": "a", "alert_type": "critical", "entity_id": "e"})
    assert status["incident"]["incident_number"] == existing.number
