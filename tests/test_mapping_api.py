"""REST: an integration's `mapping`, `integrations/<id>/rules/`, the preview action, the
audit of applied rules on alerts, and the configuration-changed signal."""

import pytest

from incidents import lifecycle
from incidents.models import Priority
from integrations.models import Alert, AlertRule, InboundEvent, Integration
from integrations.processing import process_event
from integrations.signals import integration_configuration_changed
from tests.conftest import api_client_for

MAPPING = {
    "direct": {"message": {"path": "title"}, "entity_id": {"path": "host"}},
    "conditional": [{"if": [{"path": "level", "op": "equals", "value": "P1"}],
                     "then": {"alert_type": {"value": "critical"}}}],
}


@pytest.fixture
def as_manager(manager):
    return api_client_for(manager)


@pytest.fixture
def as_responder(responder):
    return api_client_for(responder)


@pytest.fixture
def announcements():
    """The integration_configuration_changed signals sent, as (integration id, what, actor)."""
    heard = []

    def receiver(sender, integration, what, actor, **kwargs):
        heard.append((integration.pk, what, actor))

    integration_configuration_changed.connect(receiver, dispatch_uid="test-announcements")
    yield heard
    integration_configuration_changed.disconnect(dispatch_uid="test-announcements")


def url(integration, suffix=""):
    return f"/api/v1/integrations/{integration.pk}/{suffix}"


# --- mapping --------------------------------------------------------------------------

def test_mapping_is_null_until_set_and_round_trips_exactly(
    as_manager, manager, integration, announcements, django_capture_on_commit_callbacks
):
    assert as_manager.get(url(integration)).json()["mapping"] is None
    with django_capture_on_commit_callbacks(execute=True):
        response = as_manager.patch(url(integration), {"mapping": MAPPING}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["mapping"] == MAPPING
    integration.refresh_from_db()
    assert integration.mapping == MAPPING
    assert announcements == [(integration.pk, "mapping", manager)]

    with django_capture_on_commit_callbacks(execute=True):
        off = as_manager.patch(url(integration), {"mapping": None}, format="json")
    assert off.json()["mapping"] is None
    integration.refresh_from_db()
    assert integration.mapping is None
    assert len(announcements) == 2


def test_changing_other_fields_announces_nothing(
    as_manager, integration, announcements, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        as_manager.patch(url(integration), {"description": "x"}, format="json")
    assert announcements == []


def test_malformed_mapping_is_refused_naming_each_problem(as_manager, integration):
    bad = {"direct": {"message": {"path": "title"}, "colour": {"value": "red"}},
           "conditional": [{"if": [{"path": "a", "op": "startswith", "value": "x"}],
                            "then": {}}]}
    response = as_manager.patch(url(integration), {"mapping": bad}, format="json")
    assert response.status_code == 400
    assert response.json() == {"mapping": [
        "direct.colour: unknown field 'colour' (one of message, summary, entity_id, "
        "alert_type, urgency, priority)",
        "conditional[0].if[0].op: unknown op 'startswith' (one of equals, not_equals, "
        "contains, matches, exists, gt, lt)",
    ]}
    integration.refresh_from_db()
    assert integration.mapping is None


def test_mapping_is_refused_on_other_kinds(as_manager, service):
    mailbox = Integration.objects.create(name="Mail", kind="email", service=service)
    response = as_manager.patch(url(mailbox), {"mapping": MAPPING}, format="json")
    assert response.status_code == 400
    assert "generic integrations only" in response.json()["mapping"][0]


def test_integration_can_be_created_with_a_mapping(as_manager, service):
    response = as_manager.post("/api/v1/integrations/", {
        "name": "Datadog", "kind": "generic", "service": service.pk, "mapping": MAPPING,
    }, format="json")
    assert response.status_code == 201, response.content
    assert Integration.objects.get(name="Datadog").mapping == MAPPING


def test_responder_cannot_change_the_mapping(as_responder, integration):
    response = as_responder.patch(url(integration), {"mapping": MAPPING}, format="json")
    assert response.status_code == 403


# --- rules ----------------------------------------------------------------------------

RULE = {
    "name": "Quiet nights",
    "position": 2,
    "conditions": [
        {"field": "alert_type", "op": "equals", "value": "warning"},
        {"field": "time_of_day", "op": "between", "value": ["22:00", "06:00"],
         "timezone": "Europe/Berlin"},
    ],
    "actions": [{"type": "suppress"}],
}


def test_manager_creates_lists_updates_and_deletes_rules(
    as_manager, integration, announcements, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = as_manager.post(url(integration, "rules/"), RULE, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert {key: body[key] for key in RULE} == RULE
    assert body["enabled"] is True and body["integration"] == integration.pk
    rule = AlertRule.objects.get(pk=body["id"])
    assert (rule.integration, rule.conditions, rule.actions) == (
        integration, RULE["conditions"], RULE["actions"])

    listed = as_manager.get(url(integration, "rules/")).json()
    assert [r["id"] for r in listed["results"]] == [rule.pk]

    with django_capture_on_commit_callbacks(execute=True):
        patched = as_manager.patch(url(integration, f"rules/{rule.pk}/"),
                                   {"enabled": False}, format="json")
    assert patched.status_code == 200
    rule.refresh_from_db()
    assert rule.enabled is False

    with django_capture_on_commit_callbacks(execute=True):
        assert as_manager.delete(url(integration, f"rules/{rule.pk}/")).status_code == 204
    assert not AlertRule.objects.exists()
    assert [what for _, what, _ in announcements] == ["rules", "rules", "rules"]


def test_malformed_rules_are_refused_with_clear_errors(as_manager, integration):
    response = as_manager.post(url(integration, "rules/"), {
        "name": "Bad",
        "conditions": [{"field": "message", "op": "matches", "value": "(oops"}],
        "actions": [{"type": "set_priority", "value": "P9"}, {"type": "teleport"}],
    }, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["conditions"] == [
        "conditions[0].value: bad regular expression '(oops': missing ): (oops "
        "(RE2 syntax, see docs/mapping-and-rules.md)"]
    assert body["actions"] == [
        "actions[0].value: no priority 'P9'",
        "actions[1].type: unknown action 'teleport' (one of suppress, set_alert_type, "
        "set_urgency, set_message, set_summary, set_entity_id, add_note, add_tags, "
        "set_priority, route_escalation_policy)",
    ]
    assert not AlertRule.objects.exists()


def test_rules_of_another_integration_are_not_reachable(as_manager, integration, service):
    other = Integration.objects.create(name="Other", kind="generic", service=service)
    rule = AlertRule.objects.create(integration=other, name="r", actions=[{"type": "suppress"}])
    assert as_manager.get(url(integration, f"rules/{rule.pk}/")).status_code == 404
    assert as_manager.get("/api/v1/integrations/99999/rules/").status_code == 404


def test_responder_sees_rules_but_cannot_change_them(as_responder, integration):
    rule = AlertRule.objects.create(integration=integration, name="r",
                                    actions=[{"type": "suppress"}])
    assert as_responder.get(url(integration, "rules/")).json()["count"] == 1
    assert as_responder.post(url(integration, "rules/"), RULE, format="json").status_code == 403
    assert as_responder.delete(url(integration, f"rules/{rule.pk}/")).status_code == 403


# --- preview --------------------------------------------------------------------------

def test_preview_shows_mapped_fields_and_matching_rules_without_storing(
    as_responder, integration, service
):
    integration.mapping = MAPPING
    integration.save()
    p1 = Priority.objects.create(name="P1")
    rule = AlertRule.objects.create(
        integration=integration, name="Page for P1",
        conditions=[{"path": "level", "op": "equals", "value": "P1"}],
        actions=[{"type": "set_priority", "value": "P1"}],
    )
    response = as_responder.post(url(integration, "preview/"), {
        "payload": {"title": "Checkout down", "host": "web-1", "level": "P1"},
    }, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["error"] is None
    assert body["alert"] | {"payload": None} == {
        "message": "Checkout down", "summary": "", "alert_type": "critical", "urgency": "high",
        "entity_id": "web-1", "suppressed": False, "priority": {"id": p1.pk, "name": "P1"},
        "escalation_policy": None, "tags": [], "payload": None, "warnings": [],
    }
    assert body["mapping"] == {"matched_blocks": [0]}
    assert body["rules"] == [{"rule": rule.pk, "name": "Page for P1",
                              "actions": [{"type": "set_priority", "value": "P1"}]}]
    assert body["outcome"] == "opens a new incident"
    assert not Alert.objects.exists() and not InboundEvent.objects.exists()


@pytest.mark.parametrize("odd", ["²", "99999999999999999999"])
def test_preview_ignores_ids_that_are_not_ascii_digits_or_out_of_range(
    as_responder, integration, odd
):
    response = as_responder.post(url(integration, "preview/"), {
        "payload": {"message": "x", "alert_type": "critical", "tags": [odd],
                    "priority": odd, "escalation_policy": odd},
    }, format="json")
    assert response.status_code == 200, response.content
    alert = response.json()["alert"]
    assert (alert["tags"], alert["priority"], alert["escalation_policy"]) == ([], None, None)


def test_preview_tries_an_unsaved_mapping_and_unsaved_rules(as_manager, integration):
    lifecycle.open_incident(service=integration.service, title="t", entity_id="db-9")
    response = as_manager.post(url(integration, "preview/"), {
        "payload": {"msg": "Disk", "host": "db-9"},
        "mapping": {"direct": {"message": {"path": "msg"}, "entity_id": {"path": "host"},
                               "alert_type": {"value": "error"}}},
        "rules": [{"name": "Mute disks", "conditions": [
            {"field": "message", "op": "equals", "value": "Disk"}],
            "actions": [{"type": "add_note", "value": "n"}]}],
    }, format="json")
    body = response.json()
    assert (body["alert"]["message"], body["alert"]["alert_type"]) == ("Disk", "error")
    assert body["rules"][0]["name"] == "Mute disks"
    assert body["outcome"].startswith("joins incident #")
    integration.refresh_from_db()
    assert integration.mapping is None and not AlertRule.objects.exists()


def test_preview_reports_an_empty_mapped_message_as_the_failure_it_would_be(
    as_manager, integration
):
    integration.mapping = MAPPING
    integration.save()
    body = as_manager.post(url(integration, "preview/"), {"payload": {"host": "h"}},
                           format="json").json()
    assert body["alert"] is None
    assert body["error"] == ("message: the mapping produced an empty message: direct.message "
                             "(path 'title') found nothing")
    # Past the door (the mapping decides later): the stored event would fail.
    assert body["outcome"] == "the event would fail (it is kept and can be reprocessed)"


@pytest.mark.parametrize(("text", "error"), [
    ('{"message": NaN, "alert_type": "critical"}',
     "message: is NaN, which is not a number JSON can carry"),
    ('{"message": "\\ud800 down", "alert_type": "critical"}',
     "message: contains a lone surrogate escape (such as \\ud800), which is not text"),
    ('{"alert_type": "critical"}', "message: is required"),
])
def test_preview_says_a_pasted_payload_the_webhook_refuses_is_refused_at_the_door(
    client, as_manager, integration, text, error
):
    body = as_manager.post(url(integration, "preview/"), {"payload": text},
                           format="json").json()
    assert body == {"alert": None, "error": error, "mapping": None, "rules": [],
                    "outcome": "refused at the door: the webhook answers 400 and stores "
                               "the event as rejected"}

    # As the door does: a 400 naming the problem, and the event stored as rejected.
    response = client.post(f"/api/events/{integration.key}/", data=text,
                           content_type="application/json")
    assert response.status_code == 400
    assert InboundEvent.objects.get().status == "rejected"
    assert InboundEvent.objects.get().error == error


def test_preview_with_a_mapping_still_refuses_nan_at_the_door(as_manager, integration):
    integration.mapping = MAPPING
    integration.save()
    body = as_manager.post(url(integration, "preview/"), {"payload": '{"title": NaN}'},
                           format="json").json()
    assert body["outcome"].startswith("refused at the door")
    assert body["error"] == "title: is NaN, which is not a number JSON can carry"


def test_preview_of_an_old_received_event_the_door_now_refuses_says_it_would_fail(
    as_manager, integration
):
    event = InboundEvent.objects.create(integration=integration, source="generic",
                                        body=b'{"message": NaN, "alert_type": "critical"}')
    body = as_manager.post(url(integration, "preview/"), {"event": event.pk},
                           format="json").json()
    assert body["outcome"] == "the event would fail (it is kept and can be reprocessed)"
    assert body["error"] == "message: is NaN, which is not a number JSON can carry"


def test_preview_of_a_rejected_event_meets_the_door_again(as_manager, integration):
    event = InboundEvent.objects.create(integration=integration, source="generic",
                                        status="rejected", error="message: is required",
                                        body=b'{"title": "Disk full"}')
    body = as_manager.post(url(integration, "preview/"), {"event": event.pk},
                           format="json").json()
    assert (body["outcome"], body["error"]) == (
        "refused at the door: the webhook answers 400 and stores the event as rejected",
        "message: is required")

    # With a mapping it would now get in, and make an alert.
    integration.mapping = MAPPING
    integration.save()
    body = as_manager.post(url(integration, "preview/"), {"event": event.pk},
                           format="json").json()
    assert body["alert"]["message"] == "Disk full"


def test_preview_of_a_received_event(as_manager, integration):
    event = InboundEvent.objects.create(integration=integration, source="generic",
                                        body=b'{"message": "From the wire", "alert_type": "info"}')
    body = as_manager.post(url(integration, "preview/"), {"event": event.pk},
                           format="json").json()
    assert body["alert"]["message"] == "From the wire"
    assert body["outcome"] == "stored as an alert without an incident"


def test_preview_refuses_malformed_unsaved_configuration(as_manager, integration):
    response = as_manager.post(url(integration, "preview/"), {
        "payload": {"a": 1},
        "mapping": {"direct": {"message": {"path": ""}}},
        "rules": [{"name": "x", "actions": [{"type": "nope"}]}],
    }, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "mapping": ["direct.message.path: must be a non-empty dotted path such as "
                    "alerts.0.labels.severity"],
        "rules": ["rules[0].actions[0].type: unknown action 'nope' (one of suppress, "
                  "set_alert_type, set_urgency, set_message, set_summary, set_entity_id, "
                  "add_note, add_tags, set_priority, route_escalation_policy)"],
    }


def test_preview_needs_a_payload_or_an_event(as_manager, integration, service):
    assert as_manager.post(url(integration, "preview/"), {}, format="json").status_code == 400
    other = Integration.objects.create(name="Other", kind="generic", service=service)
    foreign = InboundEvent.objects.create(integration=other, source="generic", body=b"{}")
    assert as_manager.post(url(integration, "preview/"), {"event": foreign.pk},
                           format="json").status_code == 404


# --- the audit in the alerts API ------------------------------------------------------

def test_alerts_api_shows_which_rules_applied(as_responder, integration):
    rule = AlertRule.objects.create(integration=integration, name="Mute all",
                                    actions=[{"type": "suppress"}])
    event = InboundEvent.objects.create(integration=integration, source="generic",
                                        body=b'{"message": "m", "alert_type": "critical"}')
    process_event(event.pk)
    alert = Alert.objects.get()
    body = as_responder.get(f"/api/v1/alerts/{alert.pk}/").json()
    assert body["suppressed"] is True
    assert body["rules"] == [{"rule": rule.pk, "name": "Mute all",
                              "actions": [{"type": "suppress"}]}]
