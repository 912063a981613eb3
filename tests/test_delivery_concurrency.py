"""Claiming deliveries under real parallelism, on PostgreSQL: however many workers pick up
the same delivery at once, the remote side hears of it once, and the events of one
incident reach a destination in order."""

import random
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from destinations import sending
from destinations.models import Delivery
from incidents import lifecycle
from tests.delivery_helpers import make_destination
from tests.parallel import WORKERS, in_parallel
from tests.sinks import Reply

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

@pytest.fixture(autouse=True)
def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("claiming is tested on PostgreSQL (set DATABASE_URL)")


def test_parallel_workers_send_one_delivery_exactly_once(service, http_sink, monkeypatch):
    monkeypatch.setattr("tocsin.taskqueue.async_task", lambda *a, **k: None)
    make_destination(service, "webhook", {"url": f"{http_sink.url}/hook"})
    lifecycle.open_incident(service=service, title="x", entity_id="e")
    pending = Delivery.objects.get()

    results = in_parallel(sending.send_delivery, pending.pk)

    assert results.count("sent") == 1
    assert results.count("not due or already taken") == WORKERS - 1
    assert len(http_sink.requests) == 1
    pending.refresh_from_db()
    assert (pending.status, pending.attempts) == ("sent", 1)


def test_parallel_sweepers_and_workers_send_each_of_many_deliveries_once(
    service, http_sink, monkeypatch
):
    # Every queued task runs at once in the thread that queued it, like a worker would.
    monkeypatch.setattr("tocsin.taskqueue.async_task",
                        lambda func, delivery_id, **k: sending.send_delivery(delivery_id))
    for n in range(3):
        make_destination(service, "webhook", {"url": f"{http_sink.url}/hook/{n}"}, name=f"d{n}")
    monkeypatch.setattr("destinations.sending.queue_pending", lambda *a: None)
    for n in range(10):
        lifecycle.open_incident(service=service, title=f"x{n}", entity_id=f"e{n}")
    # Their tasks were lost (queue_pending patched out) and they are now overdue.
    Delivery.objects.update(next_attempt_at=timezone.now() - timedelta(minutes=5))

    in_parallel(sending.queue_due_deliveries)

    assert Delivery.objects.filter(status="sent", attempts=1).count() == 30
    assert len(http_sink.requests) == 30
    assert len({r.headers["x-tocsin-delivery"] for r in http_sink.requests}) == 30


def test_parallel_state_changes_record_one_delivery_per_event(service, http_sink, monkeypatch):
    monkeypatch.setattr("tocsin.taskqueue.async_task", lambda *a, **k: None)
    make_destination(service, "webhook", {"url": f"{http_sink.url}/hook"})
    incident = lifecycle.open_incident(service=service, title="x", entity_id="e")

    def acknowledge():
        return lifecycle.acknowledge(type(incident).objects.get(pk=incident.pk))

    results = in_parallel(acknowledge)

    assert results.count(True) == 1
    assert Delivery.objects.filter(incident=incident, event="acknowledged").count() == 1


def test_parallel_sweepers_send_a_burst_once_each_and_in_order_per_incident(
    service, http_sink, monkeypatch, settings
):
    # Tasks run at once in the thread that queued them; retries are due at once and are
    # picked up by the workers below (their one-off schedules are dropped).
    monkeypatch.setattr("tocsin.taskqueue.async_task",
                        lambda func, delivery_id, **k: sending.send_delivery(delivery_id))
    monkeypatch.setattr("tocsin.taskqueue.schedule", lambda *a, **k: None)
    monkeypatch.setattr("tocsin.outbox.SWEEP_GRACE_SECONDS", 0)
    monkeypatch.setattr("destinations.sending.queue_pending", lambda *a: None)
    settings.TOCSIN_DELIVERY_RETRY_BASE_SECONDS = 0
    settings.TOCSIN_DELIVERY_MAX_ATTEMPTS = 20
    randomly = random.Random(14)
    http_sink.replies = [Reply(503 if randomly.random() < 0.4 else 200, {}) for _ in range(60)]
    make_destination(service, "webhook", {"url": f"{http_sink.url}/hook"})
    incidents = []
    for n in range(6):
        incident = lifecycle.open_incident(service=service, title=f"x{n}", entity_id=f"e{n}")
        lifecycle.acknowledge(incident)
        lifecycle.resolve(incident)
        incidents.append(incident)
    Delivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))

    def work():
        # A task for every pending delivery, waiting ones included (each state change
        # queues its deliveries at once), in any order, then the sweeper's round.
        pending = list(Delivery.objects.filter(status="pending").values_list("pk", flat=True))
        random.shuffle(pending)
        for delivery_id in pending:
            sending.send_delivery(delivery_id)
        sending.queue_due_deliveries()

    for _ in range(40):
        if not Delivery.objects.filter(status="pending").exists():
            break
        in_parallel(work)

    deliveries = Delivery.objects.all()
    assert {d.status for d in deliveries} == {"sent"} and len(deliveries) == 18
    # Every attempt was one request, and no request went out without its attempt's claim.
    attempts = Counter(r.headers["x-tocsin-delivery"] for r in http_sink.requests)
    assert attempts == {str(d.uuid): d.attempts for d in deliveries}
    assert any(d.attempts > 1 for d in deliveries)  # the sink was flaky indeed
    for incident in incidents:
        events = [r.json["event"] for r in http_sink.requests
                  if r.json["incident"]["id"] == incident.pk]
        assert events == sorted(events, key=["triggered", "acknowledged", "resolved"].index)
        assert events[-1] == "resolved"
