"""Alert rules (docs/mapping-and-rules.md): every condition and action, conflicts decided by
creation time, the audit kept on the alert, and rules on the other integration kinds."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from incidents import lifecycle
from incidents.models import EscalationPolicy, Incident, Priority, Tag, TimelineEntry
from integrations import rules
from integrations.alert_fields import AlertFields
from integrations.models import Alert, AlertRule, InboundEvent, Integration
from integrations.processing import process_event
from tests.ingest_helpers import post_event, run_tasks  # noqa: F401 (fixture)

# Tuesday 2026-11-24, 22:30 UTC: 23:30 in Berlin, 17:30 in New York.
TUESDAY_NIGHT = datetime(2026, 11, 24, 22, 30, tzinfo=UTC)


def add_rule(integration, name, conditions, actions, **fields) -> AlertRule:
    return AlertRule.objects.create(integration=integration, name=name, conditions=conditions,
                                    actions=actions, **fields)


def evaluate(conditions, fields=None, *, now=TUESDAY_NIGHT, service_id=None) -> bool:
    """Whether one rule with these conditions matches the alert."""
    fields = fields or AlertFields(message="Disk full on db-1", summary="95% used",
                                   alert_type="warning", entity_id="db-1",
                                   payload={"host": {"name": "db-1", "kube_pod": "x"},
                                            "value": 95})
    spec = rules.RuleSpec(1, "r", 0, True, conditions, [{"type": "suppress"}], (0,))
    return bool(rules.apply_rules(fields, [spec], service_id=service_id, now=now))


@pytest.fixture
def send(client, integration, run_tasks, django_capture_on_commit_callbacks):  # noqa: F811
    """POST an alert to the generic webhook, process it, return the stored alert."""

    def _send(body):
        response = post_event(client, integration, body,
                              capture=django_capture_on_commit_callbacks)
        assert response.status_code == 200, response.content
        return Alert.objects.get(inbound_event__trace_id=response.json()["trace_id"])

    return _send


# --- Conditions -----------------------------------------------------------------------

@pytest.mark.parametrize(("condition", "expected"), [
    ({"field": "alert_type", "op": "equals", "value": "warning"}, True),
    ({"field": "alert_type", "op": "not_equals", "value": "warning"}, False),
    ({"field": "urgency", "op": "equals", "value": "low"}, True),  # follows warning
    ({"field": "message", "op": "contains", "value": "db-1"}, True),
    ({"field": "message", "op": "matches", "value": "^Disk"}, True),
    ({"field": "summary", "op": "contains", "value": "99%"}, False),
    ({"field": "entity_id", "op": "equals", "value": "db-1"}, True),
    ({"path": "host.name", "op": "equals", "value": "db-1"}, True),
    ({"path": "value", "op": "gt", "value": 90}, True),
    ({"path": "host.ip", "op": "exists"}, False),
    ({"field": "payload_keys", "op": "contains", "value": "kube"}, True),
    ({"field": "payload_keys", "op": "equals", "value": "name"}, True),  # nested keys too
    ({"field": "payload_keys", "op": "matches", "value": "^k8s"}, False),
])
def test_each_alert_and_payload_condition(condition, expected):
    assert evaluate([condition]) is expected


def test_all_conditions_of_a_rule_must_hold_and_none_matches_everything():
    assert evaluate([]) is True
    assert evaluate([{"field": "alert_type", "op": "equals", "value": "warning"},
                     {"path": "value", "op": "lt", "value": 50}]) is False


@pytest.mark.parametrize(("window", "zone", "op", "expected"), [
    (["22:00", "06:00"], "Europe/Berlin", "between", True),  # 23:30 there, across midnight
    (["22:00", "06:00"], "America/New_York", "between", False),  # 17:30 there
    (["17:00", "18:00"], "America/New_York", "between", True),
    (["23:30", "23:45"], "Europe/Berlin", "between", True),  # start is inside
    (["23:00", "23:30"], "Europe/Berlin", "between", False),  # end is not
    (["22:00", "06:00"], "Europe/Berlin", "not_between", False),
])
def test_time_of_day_in_a_timezone(window, zone, op, expected):
    condition = {"field": "time_of_day", "op": op, "value": window, "timezone": zone}
    assert evaluate([condition]) is expected


def test_day_of_week_in_a_timezone():
    # Friday 23:30 UTC is already Saturday in Berlin.
    friday_night = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)
    weekend = {"field": "day_of_week", "op": "in", "value": ["sat", "sun"]}
    assert evaluate([{**weekend, "timezone": "Europe/Berlin"}], now=friday_night) is True
    assert evaluate([{**weekend, "timezone": "UTC"}], now=friday_night) is False
    assert evaluate([{**weekend, "op": "not_in"}], now=friday_night) is True
    assert evaluate([{"field": "day_of_week", "op": "in", "value": ["tue"]}]) is True


def test_seconds_since_last_incident_with_the_same_entity_on_the_service(service):
    recently = {"field": "seconds_since_last_incident", "op": "lt", "value": 300}
    long_ago = {"field": "seconds_since_last_incident", "op": "gt", "value": 300}
    now = timezone.now()
    # Never had one: as if infinitely long ago.
    assert evaluate([recently], service_id=service.pk, now=now) is False
    assert evaluate([long_ago], service_id=service.pk, now=now) is True

    incident = lifecycle.open_incident(service=service, title="t", entity_id="db-1")
    lifecycle.resolve(incident)
    assert evaluate([recently], service_id=service.pk, now=now + timedelta(seconds=60)) is True
    assert evaluate([long_ago], service_id=service.pk, now=now + timedelta(seconds=60)) is False
    Incident.objects.filter(pk=incident.pk).update(created_at=now - timedelta(hours=1))
    assert evaluate([long_ago], service_id=service.pk, now=now) is True


def test_seconds_since_last_incident_ignores_other_entities_and_services(service, team):
    other = service.__class__.objects.create(name="Other", team=team)
    lifecycle.open_incident(service=other, title="t", entity_id="db-1")
    lifecycle.open_incident(service=service, title="t", entity_id="db-2")
    recently = {"field": "seconds_since_last_incident", "op": "lt", "value": 300}
    assert evaluate([recently], service_id=service.pk, now=timezone.now()) is False


def test_time_conditions_use_the_time_the_event_was_received(integration):
    add_rule(integration, "Quiet nights", [
        {"field": "time_of_day", "op": "between", "value": ["22:00", "06:00"],
         "timezone": "Europe/Berlin"}], [{"type": "suppress"}])
    event = InboundEvent.objects.create(
        integration=integration, source="generic",
        body=b'{"message": "m", "alert_type": "critical"}')
    InboundEvent.objects.filter(pk=event.pk).update(received_at=TUESDAY_NIGHT)
    assert process_event(event.pk) == "completed"
    assert Alert.objects.get().suppressed is True


# --- Actions --------------------------------------------------------------------------

def test_suppress_stores_the_alert_and_opens_nothing(send, integration):
    add_rule(integration, "Mute staging", [{"path": "env", "op": "equals", "value": "staging"}],
             [{"type": "suppress"}])
    alert = send({"message": "m", "alert_type": "critical", "payload": {"env": "staging"}})
    assert alert.suppressed is True
    assert alert.incident is None
    assert not Incident.objects.exists()


def test_status_document_says_suppressed(client, integration, run_tasks,  # noqa: F811
                                         django_capture_on_commit_callbacks):
    add_rule(integration, "Mute all", [], [{"type": "suppress"}])
    response = post_event(client, integration, {"message": "m", "alert_type": "critical"},
                          capture=django_capture_on_commit_callbacks)
    status = client.get(f"/api/alert/status/{response.json()['trace_id']}/").json()
    assert (status["suppressed"], status["incident"]) == (True, None)


def test_set_actions_change_the_alert_and_the_incident_it_opens(send, integration):
    p1 = Priority.objects.create(name="P1")
    policy = EscalationPolicy.objects.create(name="DBA on call", team=integration.service.team)
    add_rule(integration, "Escalate disks", [{"field": "message", "op": "contains",
                                              "value": "Disk"}], [
        {"type": "set_alert_type", "value": "critical"},
        {"type": "set_urgency", "value": "low"},
        {"type": "set_message", "value": "Disk trouble"},
        {"type": "set_summary", "value": "see runbook DB-7"},
        {"type": "set_entity_id", "value": "disks"},
        {"type": "set_priority", "value": "p1"},
        {"type": "route_escalation_policy", "value": policy.pk},
    ])
    alert = send({"message": "Disk full", "alert_type": "warning", "entity_id": "db-1"})
    assert (alert.alert_type, alert.message, alert.summary, alert.entity_id) == (
        "critical", "Disk trouble", "see runbook DB-7", "disks")
    incident = alert.incident
    assert (incident.title, incident.urgency, incident.priority, incident.escalation_policy) == (
        "Disk trouble", "low", p1, policy)
    assert incident.entity_id == "disks"


def test_add_note_and_tags_go_on_an_opened_incident(send, integration):
    kube = Tag.objects.create(name="kube")
    sent_tag = Tag.objects.create(name="from-payload")
    add_rule(integration, "Kubernetes", [{"field": "payload_keys", "op": "contains",
                                          "value": "kube"}], [
        {"type": "add_note", "value": "Check the pod's events first."},
        {"type": "add_tags", "value": ["kube"]},
    ])
    alert = send({"message": "Pod crash", "alert_type": "critical", "tags": [sent_tag.pk],
                  "payload": {"kube_namespace": "shop"}})
    incident = alert.incident
    assert set(incident.tags.all()) == {kube, sent_tag}
    note = incident.timeline.get(kind=TimelineEntry.Kind.NOTE)
    assert note.message == "Alert rule “Kubernetes”: Check the pod's events first."


def test_add_note_and_tags_also_apply_when_the_alert_joins_an_incident(send, integration):
    flaky = Tag.objects.create(name="flaky")
    first = send({"message": "m", "alert_type": "critical", "entity_id": "web"})
    add_rule(integration, "Repeats", [{"field": "seconds_since_last_incident", "op": "lt",
                                       "value": 300}], [
        {"type": "add_note", "value": "Repeated within 5 minutes."},
        {"type": "add_tags", "value": [flaky.pk]},
        {"type": "set_priority", "value": Priority.objects.create(name="P1").pk},
    ])
    second = send({"message": "m", "alert_type": "critical", "entity_id": "web"})
    incident = first.incident
    assert second.incident == incident and not second.opened_incident
    assert list(incident.tags.all()) == [flaky]
    assert incident.timeline.filter(message__contains="Repeated within 5 minutes.").count() == 1
    incident.refresh_from_db()
    assert incident.priority is None  # priority only on opening: responders may have set it


def test_rules_take_precedence_over_the_mapping(send, integration):
    integration.mapping = {"direct": {"message": {"path": "title"},
                                      "alert_type": {"value": "warning"}}}
    integration.save()
    add_rule(integration, "Everything critical", [], [{"type": "set_alert_type",
                                                       "value": "critical"}])
    alert = send({"title": "Checkout slow"})
    assert (alert.alert_type, alert.opened_incident) == ("critical", True)


def test_rules_see_mapped_fields_and_the_original_body_as_payload(send, integration):
    integration.mapping = {"direct": {"message": {"path": "title"}}}
    integration.save()
    add_rule(integration, "Match body", [{"path": "labels.team", "op": "equals",
                                          "value": "db"}], [{"type": "suppress"}])
    assert send({"title": "t", "labels": {"team": "db"}}).suppressed is True


def test_disabled_rules_do_nothing(send, integration):
    add_rule(integration, "Off", [], [{"type": "suppress"}], enabled=False)
    assert send({"message": "m"}).suppressed is False


# --- Conflicts and the audit ----------------------------------------------------------

def test_the_most_recently_created_rule_wins_conflicts_whatever_its_position(
    send, integration
):
    now = timezone.now()
    newer = add_rule(integration, "Newer", [], [{"type": "set_alert_type", "value": "error"},
                                                {"type": "add_note", "value": "newer"}],
                     position=0)
    older = add_rule(integration, "Older", [], [{"type": "set_alert_type", "value": "critical"},
                                                {"type": "set_urgency", "value": "low"},
                                                {"type": "add_note", "value": "older"}],
                     position=1)
    AlertRule.objects.filter(pk=older.pk).update(created_at=now - timedelta(days=1))
    AlertRule.objects.filter(pk=newer.pk).update(created_at=now)

    alert = send({"message": "m", "alert_type": "info"})
    assert alert.alert_type == "error"
    assert alert.extra["requested"]["urgency"] == "low"  # no conflict: the older one's stays
    assert alert.extra["rules"] == [
        {"rule": newer.pk, "name": "Newer",
         "actions": [{"type": "set_alert_type", "value": "error"},
                     {"type": "add_note", "value": "newer"}]},
        {"rule": older.pk, "name": "Older",
         "actions": [{"type": "set_urgency", "value": "low"},
                     {"type": "add_note", "value": "older"}],
         "overridden": [{"type": "set_alert_type", "value": "critical", "by": newer.pk,
                         "by_name": "Newer"}]},
    ]


def test_rules_that_do_not_match_leave_no_audit(send, integration):
    add_rule(integration, "Never", [{"field": "alert_type", "op": "equals", "value": "error"}],
             [{"type": "suppress"}])
    assert "rules" not in send({"message": "m"}).extra


# --- Other integration kinds ----------------------------------------------------------

def test_rules_apply_to_email_alerts_with_the_mail_keys_as_payload(service):
    mailbox = Integration.objects.create(name="Nagios mail", kind="email", service=service)
    add_rule(mailbox, "Mute backups", [{"path": "resource_name", "op": "matches",
                                        "value": "^backup-"}], [{"type": "suppress"}])
    raw = (f"To: {mailbox.email_address}\r\nFrom: nagios@example.com\r\nSubject: alert\r\n"
           "\r\nseverity: 1\r\ndescription: Backup failed\r\nresource_name: backup-3\r\n")
    event = InboundEvent.objects.create(integration=mailbox, source="email", body=raw.encode())
    assert process_event(event.pk) == "completed"
    alert = Alert.objects.get()
    assert (alert.alert_type, alert.suppressed) == ("critical", True)
    assert alert.extra["rules"][0]["name"] == "Mute backups"


def test_rules_apply_to_incoming_webhook_declarations(service):
    hook = Integration.objects.create(name="Grafana", kind="incoming_webhook", service=service)
    add_rule(hook, "Note drills", [{"path": "kind", "op": "equals", "value": "drill"}],
             [{"type": "add_note", "value": "Practice run."}])
    event = InboundEvent.objects.create(integration=hook, source="incoming_webhook",
                                        body=b'{"kind": "drill"}', query={"title": "Game day"})
    assert process_event(event.pk) == "completed"
    incident = Incident.objects.get()
    assert incident.title == "Game day"
    assert incident.timeline.filter(message="Alert rule “Note drills”: Practice run.").exists()


# --- Validation -----------------------------------------------------------------------

@pytest.mark.parametrize(("conditions", "error"), [
    ([{"field": "colour", "op": "equals", "value": "red"}],
     "conditions[0].field: unknown field 'colour'"),
    ([{"field": "message", "op": "startswith", "value": "x"}],
     "conditions[0].op: unknown op 'startswith'"),
    ([{"field": "message", "op": "matches", "value": "[a-"}],
     "conditions[0].value: bad regular expression '[a-'"),
    ([{"path": "a", "op": "equals", "value": 1}, {"path": "", "op": "exists"}],
     "conditions[1].path: must be a non-empty dotted path"),
    ([{"field": "time_of_day", "op": "between", "value": ["22:00", "6am"]}],
     'conditions[0].value: must be ["HH:MM", "HH:MM"] (24-hour clock)'),
    ([{"field": "time_of_day", "op": "between", "value": ["22:00", "06:00"],
       "timezone": "Mars/Olympus"}],
     "conditions[0].timezone: unknown timezone 'Mars/Olympus'"),
    ([{"field": "day_of_week", "op": "in", "value": ["saturday"]}],
     "conditions[0].value: must be a list of days (mon, tue, wed, thu, fri, sat, sun)"),
    ([{"field": "day_of_week", "op": "equals", "value": ["sat"]}],
     "conditions[0].op: unknown op 'equals' for day_of_week (one of in, not_in)"),
    ([{"field": "seconds_since_last_incident", "op": "lt", "value": "soon"}],
     "conditions[0].value: must be a number of seconds"),
    ([{"field": "message", "path": "a", "op": "exists"}],
     "conditions[0]: has both field and path; use one"),
    ({"field": "message"}, "must be a list of conditions"),
])
def test_malformed_conditions_are_refused(conditions, error, db):
    found = rules.validate_conditions(conditions)
    assert any(message.startswith(error) for message in found), found


@pytest.mark.parametrize(("actions", "error"), [
    ([], "must be a non-empty list of actions"),
    ([{"type": "explode"}], "actions[0].type: unknown action 'explode'"),
    ([{"type": "set_alert_type", "value": "page"}],
     "actions[0].value: 'page' is not an alert type"),
    ([{"type": "set_urgency", "value": "medium"}], "actions[0].value: 'medium' is not an urgency"),
    ([{"type": "set_message", "value": ""}], "actions[0].value: must be a non-empty string"),
    ([{"type": "add_tags", "value": ["nope"]}], "actions[0].value: no tag 'nope'"),
    ([{"type": "set_priority", "value": 999}], "actions[0].value: no priority 999"),
    ([{"type": "route_escalation_policy", "value": "DBA"}],
     "actions[0].value: no escalation policy 'DBA'"),
    ([{"type": "add_note"}], "actions[0].value: is required"),
    ([{"type": "suppress", "value": True}], "actions[0]: unknown key(s) value"),
    ([{"type": "suppress"}, {"type": "suppress"}],
     "actions[1].type: suppress appears twice in one rule"),
])
def test_malformed_actions_are_refused(actions, error, db):
    found = rules.validate_actions(actions)
    assert any(message.startswith(error) for message in found), found


def test_wellformed_actions_naming_existing_objects_are_accepted(integration):
    tag = Tag.objects.create(name="db")
    Priority.objects.create(name="P2")
    policy = EscalationPolicy.objects.create(name="DBA", team=integration.service.team)
    assert rules.validate_actions([
        {"type": "add_tags", "value": [tag.pk, "DB"]}, {"type": "set_priority", "value": "P2"},
        {"type": "route_escalation_policy", "value": policy.pk}, {"type": "suppress"},
    ]) == []
