"""JSON the database could not store, refused at the door of the generic webhook and read as
"not JSON" by the incoming webhook, so a 200 always means the alert will be processed."""

import json

import pytest

from incidents.models import Incident
from integrations.generic import MAX_DEPTH
from integrations.models import InboundEvent, Integration, IntegrationToken
from tests.ingest_helpers import post_event

# What Python's json.dumps writes for values JSON has no text for, and escapes that decode
# to text no database column can hold. (name, body, path named in the 400)
UNSTORABLE = [
    ("nan", json.dumps({"message": "disk", "payload": {"ratio": float("nan")}}),
     "payload.ratio"),
    ("infinity", json.dumps({"message": "disk", "payload": {"ratio": float("inf")}}),
     "payload.ratio"),
    ("minus_infinity", json.dumps({"message": "disk", "payload": {"r": [float("-inf")]}}),
     "payload.r.0"),
    ("out_of_range_number", '{"message": "disk", "summary": "x", "payload": {"v": 1e999}}',
     "payload.v"),
    ("lone_surrogate_in_message", json.dumps({"message": "disk \ud800 full"}), "message"),
    ("lone_surrogate_in_a_key", json.dumps({"message": "disk", "payload": {"\udc00": 1}}),
     "payload"),
    ("nul_character", json.dumps({"message": "disk\u0000full"}), "message"),
]
# 100k nested lists: the size that made the parser overflow its recursion limit.
DEEP = "[" * 100_000 + "]" * 100_000


def nested(depth: int) -> dict:
    value: object = "bottom"
    for _ in range(depth):
        value = {"next": value}
    return {"message": "deep", "payload": value}


@pytest.mark.parametrize(("name", "body", "path"), UNSTORABLE, ids=[c[0] for c in UNSTORABLE])
def test_unstorable_json_is_a_400_naming_the_path_and_stored_rejected(
    client, integration, run_tasks, django_capture_on_commit_callbacks, name, body, path
):
    response = post_event(client, integration, body, raw=True,
                          capture=django_capture_on_commit_callbacks)
    assert response.status_code == 400
    assert path in response.json()["errors"]
    event = InboundEvent.objects.get()
    assert event.status == InboundEvent.Status.REJECTED
    assert str(event.trace_id) == response.json()["trace_id"]
    assert bytes(event.body) == body.encode()
    assert run_tasks == []


@pytest.mark.parametrize(("name", "body", "path"), UNSTORABLE, ids=[c[0] for c in UNSTORABLE])
def test_unstorable_json_is_refused_too_when_the_integration_has_a_mapping(
    client, integration, django_capture_on_commit_callbacks, name, body, path
):
    integration.mapping = {"direct": {"message": {"path": "message"}}}
    integration.save()
    response = post_event(client, integration, body, raw=True,
                          capture=django_capture_on_commit_callbacks)
    assert response.status_code == 400
    assert InboundEvent.objects.get().status == InboundEvent.Status.REJECTED


def test_100k_nested_lists_are_a_400_stored_as_rejected(client, integration):
    response = post_event(client, integration, DEEP, raw=True)
    assert response.status_code == 400
    assert f"deeper than {MAX_DEPTH} levels" in response.json()["errors"]["body"]
    event = InboundEvent.objects.get()
    assert event.status == InboundEvent.Status.REJECTED
    assert f"deeper than {MAX_DEPTH} levels" in event.error


def test_nesting_just_past_the_limit_is_refused_and_at_the_limit_processed(
    client, integration, run_tasks, django_capture_on_commit_callbacks
):
    # "payload" is one level, so MAX_DEPTH - 1 objects inside it reach the limit exactly.
    too_deep = post_event(client, integration, nested(MAX_DEPTH), capture=(
        django_capture_on_commit_callbacks))
    assert too_deep.status_code == 400
    assert "deeper than" in too_deep.json()["errors"]["body"]
    fits = post_event(client, integration, nested(MAX_DEPTH - 1),
                      capture=django_capture_on_commit_callbacks)
    assert fits.status_code == 200
    event = InboundEvent.objects.get(trace_id=fits.json()["trace_id"])
    assert event.status == InboundEvent.Status.COMPLETED, event.error


# The incoming webhook declares an incident whatever the body: such a body is "not JSON".

@pytest.fixture
def hook(service):
    return Integration.objects.create(name="Grafana", kind="incoming_webhook", service=service)


@pytest.mark.parametrize(
    "body",
    [case[1] for case in UNSTORABLE] + [DEEP, json.dumps(nested(MAX_DEPTH))],
    ids=[case[0] for case in UNSTORABLE] + ["100k_nested_lists", "nested_past_the_limit"],
)
def test_incoming_webhook_declares_the_incident_from_defaults_for_unstorable_json(
    client, hook, run_tasks, django_capture_on_commit_callbacks, body
):
    _, plaintext = IntegrationToken.issue(hook, "prod")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/api/incoming-webhooks/incident.create?title=json(message)&labels=json(payload)",
            data=body.encode(), content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {plaintext}",
        )
    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert event.status == InboundEvent.Status.COMPLETED, event.error
    assert event.alert.payload == {}
    assert Incident.objects.get().title == "Incident declared via Grafana"


def test_incoming_webhook_stores_nul_characters_of_query_parameters_as_replacement_marks(
    client, hook, run_tasks, django_capture_on_commit_callbacks
):
    _, plaintext = IntegrationToken.issue(hook, "prod")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/api/incoming-webhooks/incident.create?title=disk%00full&labels=a%00,b",
            data=b"", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {plaintext}",
        )
    assert response.status_code == 200
    assert InboundEvent.objects.get().status == InboundEvent.Status.COMPLETED
    assert Incident.objects.get().title == "disk\ufffdfull"
