"""Custom payload mapping (docs/mapping-and-rules.md): operators, paths, sources, block
order, the empty-message failure and reprocessing, and validation of malformed mappings."""

import pytest

from incidents.models import Incident, Priority
from integrations import mapping
from integrations.generic import InvalidPayload
from integrations.models import Alert, InboundEvent
from integrations.queue import requeue
from tests.ingest_helpers import post_event, run_tasks  # noqa: F401 (fixture)

ALERTMANAGER = {
    "receiver": "tocsin",
    "status": "firing",
    "groupKey": '{}:{alertname="DiskFull"}',
    "commonLabels": {"alertname": "DiskFull", "severity": "critical"},
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "DiskFull", "instance": "db-1:9100", "severity": "critical"},
            "annotations": {"summary": "Disk 95% full on db-1", "description": "/var is full"},
            "fingerprint": "c0ffee",
        },
        {"status": "firing", "labels": {"instance": "db-2:9100"}, "annotations": {}},
    ],
    "truncatedAlerts": 0,
}


def fields_for(config, document):
    return mapping.alert_fields(config, document)


@pytest.mark.parametrize(("op", "value", "actual", "expected"), [
    ("equals", "firing", "firing", True),
    ("equals", "firing", "resolved", False),
    ("equals", 5, "5", True),  # scalars compare as text
    ("equals", True, "true", True),
    ("not_equals", "firing", "resolved", True),
    ("not_equals", "firing", "firing", False),
    ("not_equals", "firing", mapping.MISSING, True),  # nothing there differs from anything
    ("contains", "disk", "low disk space", True),
    ("contains", "Disk", "low disk space", False),  # case-sensitive
    ("contains", "prod", ["staging", "prod"], True),  # a list holds the item
    ("contains", "team", {"team": "db"}, True),  # an object has the key
    ("contains", "x", mapping.MISSING, False),
    ("matches", r"^db-\d+$", "db-12", True),
    ("matches", r"(?i)^DB", "db-12", True),
    ("matches", r"^db-\d+$", "web-1", False),
    ("exists", True, "anything", True),
    ("exists", True, None, False),  # null counts as absent
    ("exists", True, mapping.MISSING, False),
    ("exists", False, mapping.MISSING, True),
    ("exists", True, "", False),  # an empty or blank string is nothing, as in assignments
    ("exists", False, "", True),
    ("exists", True, "  ", False),
    ("exists", True, [], True),  # empty lists and objects are something ("[]", "{}")
    ("exists", True, {}, True),
    ("exists", True, 0, True),
    ("exists", True, False, True),
    ("gt", 90, 93.5, True),
    ("gt", 90, "93.5", True),  # numeric strings are numbers
    ("gt", 90, 90, False),
    ("gt", 90, "n/a", False),  # not a number never compares
    ("lt", 10, 3, True),
    ("lt", 10, 30, False),
    ("lt", 10, mapping.MISSING, False),
])
def test_each_operator(op, value, actual, expected):
    condition = mapping.Condition.compile({"path": "x", "op": op, "value": value})
    document = {} if actual is mapping.MISSING else {"x": actual}
    assert condition.test(document) is expected


@pytest.mark.parametrize(("path", "expected"), [
    ("status", "firing"),
    ("commonLabels.alertname", "DiskFull"),
    ("alerts.0.labels.instance", "db-1:9100"),
    ("alerts.1.labels.instance", "db-2:9100"),
    ("alerts.-1.labels.instance", "db-2:9100"),
    ("alerts.2.labels.instance", mapping.MISSING),
    ("alerts.first.labels", mapping.MISSING),
    ("commonLabels.alertname.deeper", mapping.MISSING),
    ("truncatedAlerts", 0),
    # Digits int() refuses (or that are no index) find nothing rather than fail the event.
    ("alerts.².labels", mapping.MISSING),
    ("alerts.--1.labels", mapping.MISSING),
    ("alerts.99999999999999999999.labels", mapping.MISSING),
])
def test_paths_reach_into_nested_objects_and_lists(path, expected):
    found = mapping.lookup(ALERTMANAGER, path)
    assert found is expected if expected is mapping.MISSING else found == expected


def test_direct_mapping_takes_paths_and_literals():
    fields = fields_for({"direct": {
        "message": {"path": "alerts.0.annotations.summary"},
        "summary": {"path": "alerts.0.annotations.description"},
        "entity_id": {"path": "alerts.0.fingerprint"},
        "alert_type": {"value": "critical"},
    }}, ALERTMANAGER)
    assert (fields.message, fields.summary, fields.entity_id, fields.alert_type) == (
        "Disk 95% full on db-1", "/var is full", "c0ffee", "critical")
    # With mapping on, the whole original body is the payload.
    assert fields.payload == ALERTMANAGER


def test_values_that_are_not_text_become_text():
    fields = fields_for({"direct": {
        "message": {"path": "commonLabels"}, "entity_id": {"path": "truncatedAlerts"},
    }}, ALERTMANAGER)
    assert fields.message == '{"alertname":"DiskFull","severity":"critical"}'
    assert fields.entity_id == "0"


def test_a_path_that_does_not_resolve_leaves_the_field_unset():
    fields = fields_for({"direct": {
        "message": {"value": "Alert"}, "summary": {"path": "no.such.path"},
        "alert_type": {"path": "alerts.5.labels.severity"},
    }}, ALERTMANAGER)
    assert (fields.summary, fields.alert_type, fields.entity_id) == ("", "info", "")


def test_blocks_run_in_order_and_later_ones_override():
    config = {
        "direct": {"message": {"value": "Alert"}, "alert_type": {"value": "info"}},
        "conditional": [
            {"if": [{"path": "status", "op": "equals", "value": "firing"}],
             "then": {"alert_type": {"value": "warning"}, "summary": {"value": "from block 0"}}},
            {"if": [{"path": "commonLabels.severity", "op": "equals", "value": "critical"},
                    {"path": "status", "op": "equals", "value": "firing"}],
             "then": {"alert_type": {"path": "commonLabels.severity"}}},
            {"if": [{"path": "status", "op": "equals", "value": "resolved"}],
             "then": {"alert_type": {"value": "resolved"}}},
        ],
    }
    fields = fields_for(config, ALERTMANAGER)
    assert fields.alert_type == "critical"
    assert fields.summary == "from block 0"  # not overridden by a later block
    assert fields.extra["mapping"] == {"matched_blocks": [0, 1]}


def test_a_block_needs_all_its_conditions():
    config = {"direct": {"message": {"value": "m"}}, "conditional": [
        {"if": [{"path": "status", "op": "equals", "value": "firing"},
                {"path": "receiver", "op": "equals", "value": "someone-else"}],
         "then": {"alert_type": {"value": "critical"}}},
    ]}
    assert fields_for(config, ALERTMANAGER).alert_type == "info"


def test_a_block_path_that_does_not_resolve_keeps_the_earlier_value():
    config = {"direct": {"message": {"path": "alerts.0.annotations.summary"}}, "conditional": [
        {"if": [], "then": {"message": {"path": "alerts.1.annotations.summary"}}},
    ]}
    assert fields_for(config, ALERTMANAGER).message == "Disk 95% full on db-1"


def test_urgency_and_priority_can_be_mapped():
    config = {"direct": {"message": {"value": "m"}, "urgency": {"value": "low"},
                         "priority": {"value": "P1"}}}
    fields = fields_for(config, ALERTMANAGER)
    assert (fields.urgency, fields.priority) == ("low", "P1")


def test_an_unknown_mapped_urgency_is_ignored_with_a_warning():
    fields = fields_for({"direct": {"message": {"value": "m"}, "urgency": {"path": "status"}}},
                        ALERTMANAGER)
    assert fields.urgency == ""
    assert "'firing', which is not an urgency" in fields.extra["warnings"][0]


def test_empty_message_error_names_the_sources_that_found_nothing():
    config = {"direct": {"message": {"path": "alerts.1.annotations.summary"}}, "conditional": [
        {"if": [], "then": {"message": {"path": "title"}}},
    ]}
    with pytest.raises(InvalidPayload) as raised:
        fields_for(config, ALERTMANAGER)
    assert raised.value.errors == {"message": (
        "the mapping produced an empty message: direct.message (path "
        "'alerts.1.annotations.summary') found nothing; conditional[0].then.message "
        "(path 'title') found nothing")}


def test_mapped_alert_type_must_be_valid():
    with pytest.raises(InvalidPayload) as raised:
        fields_for({"direct": {"message": {"value": "m"}, "alert_type": {"path": "status"}}},
                   ALERTMANAGER)
    assert raised.value.errors["alert_type"].startswith(
        "direct.alert_type (path 'status') gave 'firing', which is not one of")


@pytest.mark.parametrize(("config", "error"), [
    ("yes", 'must be null or an object {"direct": {…}, "conditional": […]}'),
    ({"direkt": {}}, "unknown key(s) direkt (only direct and conditional)"),
    ({"direct": {"title": {"value": "x"}}},
     "direct.title: unknown field 'title' (one of message, summary, entity_id, alert_type, "
     "urgency, priority)"),
    ({"direct": {"message": "x"}}, 'direct.message: must be {"path": "a.b"} or {"value": …}'),
    ({"direct": {"message": {"path": "a..b"}}}, "direct.message.path: 'a..b' has an empty part"),
    ({"direct": {"alert_type": {"value": "page"}}},
     "direct.alert_type.value: 'page' is not an alert type (critical, acknowledged, resolved, "
     "error, warning, info)"),
    ({"direct": {"urgency": {"value": "medium"}}},
     "direct.urgency.value: 'medium' is not an urgency (high, low)"),
    ({"conditional": [{"if": [{"path": "a", "op": "startswith", "value": "x"}], "then": {}},
                      {"if": [], "then": {}},
                      {"if": [{"path": "a", "op": "equals", "value": 1},
                              {"path": "b", "op": "matches", "value": "(unclosed"}],
                       "then": {}}]},
     "conditional[0].if[0].op: unknown op 'startswith' (one of equals, not_equals, contains, "
     "matches, exists, gt, lt)"),
    ({"conditional": [{"if": [{"path": "b", "op": "matches", "value": "(unclosed"}],
                       "then": {}}]},
     "conditional[0].if[0].value: bad regular expression '(unclosed': missing ): (unclosed "
     "(RE2 syntax, see docs/mapping-and-rules.md)"),
    ({"conditional": [{"if": [{"path": "b", "op": "gt", "value": "many"}], "then": {}}]},
     "conditional[0].if[0].value: gt needs a number"),
    ({"conditional": [{"if": [{"path": "b", "op": "equals"}], "then": {}}]},
     "conditional[0].if[0].value: equals needs a value"),
    ({"conditional": [{"when": [], "then": {}}]},
     "conditional[0]: must be an object with exactly if and then"),
])
def test_malformed_mappings_are_refused_with_the_place_named(config, error):
    assert error in mapping.validate_mapping(config)


def test_a_wellformed_mapping_and_null_are_valid():
    assert mapping.validate_mapping(None) == []
    assert mapping.validate_mapping({"direct": {"message": {"path": "a.0.b"}}, "conditional": [
        {"if": [{"path": "x", "op": "exists"}], "then": {"priority": {"value": 3}}}]}) == []


# --- Through the webhook and the worker -----------------------------------------------

ALERTMANAGER_MAPPING = {
    "direct": {
        "message": {"path": "alerts.0.annotations.summary"},
        "entity_id": {"path": "groupKey"},
        "alert_type": {"value": "warning"},
    },
    "conditional": [
        {"if": [{"path": "commonLabels.severity", "op": "equals", "value": "critical"}],
         "then": {"alert_type": {"value": "critical"}, "priority": {"value": "P1"}}},
        {"if": [{"path": "status", "op": "equals", "value": "resolved"}],
         "then": {"alert_type": {"value": "resolved"}}},
    ],
}


@pytest.fixture
def mapped(integration):
    integration.mapping = ALERTMANAGER_MAPPING
    integration.save()
    return integration


def test_mapped_alertmanager_payload_opens_an_incident(
    client, mapped, run_tasks, django_capture_on_commit_callbacks  # noqa: F811
):
    p1 = Priority.objects.create(name="P1")
    response = post_event(client, mapped, ALERTMANAGER,
                          capture=django_capture_on_commit_callbacks)
    assert response.status_code == 200, response.content
    alert = Alert.objects.get()
    assert (alert.message, alert.alert_type, alert.entity_id) == (
        "Disk 95% full on db-1", "critical", ALERTMANAGER["groupKey"])
    assert alert.payload == ALERTMANAGER
    incident = Incident.objects.get()
    assert (incident.title, incident.priority, incident.urgency) == (
        "Disk 95% full on db-1", p1, "high")

    resolved = {**ALERTMANAGER, "status": "resolved", "commonLabels": {}}
    post_event(client, mapped, resolved, capture=django_capture_on_commit_callbacks)
    incident.refresh_from_db()
    assert incident.status == "resolved"


def test_body_without_message_is_accepted_when_mapping_is_on(client, mapped):
    response = post_event(client, mapped, {"anything": "goes"})
    assert response.status_code == 200
    assert InboundEvent.objects.get().status == "queued"


def test_body_that_is_not_a_json_object_is_still_refused_with_mapping(client, mapped):
    response = post_event(client, mapped, "[1, 2]", raw=True)
    assert response.status_code == 400


def test_empty_mapped_message_fails_then_succeeds_after_the_mapping_is_fixed(
    client, mapped, run_tasks, django_capture_on_commit_callbacks  # noqa: F811
):
    body = {**ALERTMANAGER, "alerts": [{"labels": {"alertname": "NoSummary"}}]}
    response = post_event(client, mapped, body, capture=django_capture_on_commit_callbacks)
    trace_id = response.json()["trace_id"]
    event = InboundEvent.objects.get(trace_id=trace_id)
    assert event.status == "failed"
    assert "direct.message (path 'alerts.0.annotations.summary') found nothing" in event.error
    assert client.get(f"/api/alert/status/{trace_id}/").json()["status"] == "failed"
    assert not Alert.objects.exists()

    mapped.mapping = {**ALERTMANAGER_MAPPING, "conditional": [
        *ALERTMANAGER_MAPPING["conditional"],
        {"if": [{"path": "alerts.0.annotations.summary", "op": "exists", "value": False}],
         "then": {"message": {"path": "alerts.0.labels.alertname"}}},
    ]}
    mapped.save()
    with django_capture_on_commit_callbacks(execute=True):
        assert requeue(event)
    event.refresh_from_db()
    assert event.status == "completed"
    assert Alert.objects.get(inbound_event=event).message == "NoSummary"


def test_invalid_mapped_alert_type_fails_the_event_with_a_clear_error(
    client, integration, run_tasks, django_capture_on_commit_callbacks  # noqa: F811
):
    integration.mapping = {"direct": {"message": {"value": "m"},
                                      "alert_type": {"path": "status"}}}
    integration.save()
    post_event(client, integration, ALERTMANAGER, capture=django_capture_on_commit_callbacks)
    event = InboundEvent.objects.get()
    assert event.status == "failed"
    assert "direct.alert_type (path 'status') gave 'firing'" in event.error


def test_mapped_urgency_sets_the_incident_urgency(
    client, integration, run_tasks, django_capture_on_commit_callbacks  # noqa: F811
):
    integration.mapping = {"direct": {"message": {"value": "m"}, "entity_id": {"value": "e"},
                                      "alert_type": {"value": "critical"},
                                      "urgency": {"value": "low"}}}
    integration.save()
    post_event(client, integration, {"x": 1}, capture=django_capture_on_commit_callbacks)
    assert Incident.objects.get().urgency == "low"


def test_a_list_index_of_thousands_of_digits_resolves_to_nothing():
    # int() refuses more than 4,300 digits; such a path is simply missing.
    assert mapping.lookup({"a": [1]}, "a." + "9" * 4400) is mapping.MISSING
    assert mapping.lookup({"a": [1]}, "a.-" + "9" * 30) is mapping.MISSING
