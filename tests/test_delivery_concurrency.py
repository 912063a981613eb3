"""Claiming deliveries under real parallelism, on PostgreSQL: however many workers pick up
the same delivery at once, the remote side hears of it once."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from destinations import delivery
from destinations.models import Delivery
from incidents import lifecycle
from tests.delivery_helpers import make_destination

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

WORKERS = 8


@pytest.fixture(autouse=True)
def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("claiming is tested on PostgreSQL (set DATABASE_URL)")


def in_parallel(function, *args) -> list:
    barrier = threading.Barrier(WORKERS)
    results = [None] * WORKERS

    def run(index):
        try:
            barrier.wait()
            results[index] = function(*args)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_parallel_workers_send_one_delivery_exactly_once(service, http_sink, monkeypatch):
    monkeypatch.setattr("tocsin.taskqueue.async_task", lambda *a, **k: None)
    make_destination(service, "webhook", {"url": f"{http_sink.url}/hook"})
    lifecycle.open_incident(service=service, title="x", entity_id="e")
    pending = Delivery.objects.get()

    results = in_parallel(delivery.send_delivery, pending.pk)

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
                        lambda func, delivery_id, **k: delivery.send_delivery(delivery_id))
    for n in range(3):
        make_destination(service, "webhook", {"url": f"{http_sink.url}/hook/{n}"}, name=f"d{n}")
    monkeypatch.setattr("destinations.delivery.queue_pending", lambda *a: None)
    for n in range(10):
        lifecycle.open_incident(service=service, title=f"x{n}", entity_id=f"e{n}")
    # Their tasks were lost (queue_pending patched out) and they are now overdue.
    Delivery.objects.update(next_attempt_at=timezone.now() - timedelta(minutes=5))

    in_parallel(delivery.queue_due_deliveries)

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
