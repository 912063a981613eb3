"""The kind base class: the key that ties one incident's events together on the remote side
is built once, in Kind.remote_key, and every kind that sends one takes it from there."""

import uuid
from datetime import UTC, datetime

import pytest

from destinations.kinds import KINDS
from destinations.kinds.base import Kind, Message

DELIVERY_ID = str(uuid.uuid4())
CONFIGS = {
    "pagerduty": {"integration_key": "k", "api_url": "https://events.example"},
    "opsgenie": {"api_key": "k", "api_url": "https://api.example"},
    "ilert": {"integration_key": "k", "api_url": "https://api.example"},
    "servicenow": {"instance_url": "https://sn.example", "username": "u", "password": "p",
                   "close_code": "Solution provided"},
    "zendesk": {"api_url": "https://z.example", "email": "a@example.com", "api_token": "t"},
}
# Where each kind puts the key in what it creates on the remote side.
KEY_IN_PAYLOAD = {
    "pagerduty": lambda payload: payload["dedup_key"],
    "opsgenie": lambda payload: payload["alias"],
    "ilert": lambda payload: payload["alertKey"],
    "servicenow": lambda payload: payload["correlation_id"],
    "zendesk": lambda payload: payload["ticket"]["external_id"],
}


def message(kind: str, event: str) -> Message:
    test = event == "test"
    return Message(
        event=event, config=CONFIGS[kind], delivery_id=DELIVERY_ID,
        incident_id=None if test else 7, number=None if test else 42,
        unique_id="test-9" if test else "ab12cd", title="Disk full on db-1", summary="",
        status=event, urgency="high", severity="critical", priority="", service="Checkout",
        team="Platform", entity_id="db-1", drill=False, url="https://tocsin.example/x",
        created_at=None, occurred_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
    )


@pytest.mark.parametrize("kind", sorted(KEY_IN_PAYLOAD))
def test_a_test_message_uses_the_per_delivery_key_and_a_real_one_the_incidents_dedup_key(kind):
    sender = KINDS[kind]
    assert type(sender).remote_key is Kind.remote_key  # no kind builds its own

    test, real = message(kind, "test"), message(kind, "triggered")

    assert KEY_IN_PAYLOAD[kind](sender.build(test)) == f"tocsin-test-{DELIVERY_ID}"
    assert KEY_IN_PAYLOAD[kind](sender.build(real)) == "tocsin-ab12cd"
