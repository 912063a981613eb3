"""Grouping under real concurrency, on PostgreSQL: a live gunicorn with several worker
processes, a django-q2 cluster with several workers, and simultaneous requests."""

import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from destinations.models import Delivery, Destination
from incidents.models import Incident, Service, Team
from integrations.models import Alert, InboundEvent, Integration
from tests.processes import (
    base_env,
    free_port,
    get_json,
    kill_group,
    post_json,
    start,
    stop,
    wait_for,
)
from tests.sinks import HTTPSink

pytestmark = [
    pytest.mark.postgres_only,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture(autouse=True)
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("concurrency is tested on PostgreSQL (set DATABASE_URL)")


def database_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Stack:
    """gunicorn (web) and qcluster (worker) against the test database."""

    def __init__(self, tmp_path: Path, **env):
        self.port = free_port()
        self.tmp = tmp_path
        self.env = base_env(DATABASE_URL=database_url(), TOCSIN_WORKERS="4", **env)
        self.web = self.worker = None

    def start_web(self):
        self.web = start(
            ["gunicorn", "tocsin.wsgi", "--bind", f"127.0.0.1:{self.port}", "--workers", "3"],
            self.env, self.tmp / "web.log",
        )
        assert wait_for(lambda: self.healthy(), 30), (self.tmp / "web.log").read_text()

    def start_worker(self, name="worker"):
        self.worker = start(["python", "manage.py", "qcluster"], self.env,
                            self.tmp / f"{name}.log")

    def healthy(self):
        return get_json(f"{self.url}/healthz") is not None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        for process in (self.web, self.worker):
            if process is not None:
                stop(process)


@pytest.fixture
def stack(tmp_path):
    # Destinations in these tests are local sinks, so the private-address guard is off.
    # A delivery's deadline must end 10 s before the short task timeout (docs/configuration.md).
    running = Stack(tmp_path, TOCSIN_REQUEUE_AFTER_SECONDS="2", TOCSIN_TASK_TIMEOUT="20",
                    TOCSIN_DELIVERY_DEADLINE_SECONDS="10",
                    TOCSIN_ALLOW_PRIVATE_DESTINATIONS="true")
    yield running
    running.stop()


@pytest.fixture
def integration(db):
    team = Team.objects.create(name="Platform")
    service = Service.objects.create(name="Checkout", team=team)
    return Integration.objects.create(
        name="Prometheus", kind="generic", service=service, rate_limit_per_minute=0
    )


def fire_at_once(url: str, bodies: list[dict]) -> list[tuple[int, dict]]:
    """POST every body from its own thread, released together by a barrier."""
    barrier = threading.Barrier(len(bodies))
    results: list = [None] * len(bodies)

    def send(index, body):
        barrier.wait()
        results[index] = post_json(url, body)

    threads = [threading.Thread(target=send, args=(i, b)) for i, b in enumerate(bodies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def all_events_finished(expected: int):
    done = InboundEvent.objects.exclude(status=InboundEvent.Status.QUEUED).count()
    return done >= expected


def test_simultaneous_alerts_for_one_entity_open_exactly_one_incident(stack, integration):
    stack.start_web()
    stack.start_worker()
    bodies = [
        {"message": f"CPU high ({n})", "alert_type": "critical", "entity_id": "web-1-cpu"}
        for n in range(48)
    ]
    results = fire_at_once(f"{stack.url}/api/events/{integration.key}/", bodies)
    assert [status for status, _ in results] == [200] * len(bodies)
    assert wait_for(lambda: all_events_finished(len(bodies)), 90), "events still queued"

    assert InboundEvent.objects.filter(status="completed").count() == len(bodies)
    [incident] = Incident.objects.filter(entity_id="web-1-cpu")
    assert incident.alerts.count() == len(bodies)
    assert Alert.objects.filter(opened_incident=True).count() == 1
    assert incident.number == 1


def test_incident_numbers_stay_sequential_under_concurrency(stack, integration):
    stack.start_web()
    stack.start_worker()
    bodies = [
        {"message": f"m{n}", "alert_type": "critical", "entity_id": f"host-{n % 10}"}
        for n in range(40)
    ]
    results = fire_at_once(f"{stack.url}/api/events/{integration.key}/", bodies)
    assert all(status == 200 for status, _ in results)
    assert wait_for(lambda: all_events_finished(len(bodies)), 90)
    numbers = sorted(Incident.objects.values_list("number", flat=True))
    assert numbers == list(range(1, 11))
    for n in range(10):
        assert Incident.objects.get(entity_id=f"host-{n}").alerts.count() == 4


def test_worker_killed_mid_burst_loses_nothing(stack, integration):
    stack.start_web()
    stack.start_worker("worker-1")
    url = f"{stack.url}/api/events/{integration.key}/"
    bodies = [
        {"message": f"m{n}", "alert_type": "critical", "entity_id": f"svc-{n % 5}"}
        for n in range(120)
    ]
    sender = threading.Thread(target=lambda: [post_json(url, b) for b in bodies])
    sender.start()
    # Kill the worker without warning once it is busy, while requests keep arriving.
    assert wait_for(lambda: InboundEvent.objects.filter(status="completed").exists(), 60)
    kill_group(stack.worker)
    sender.join(timeout=120)
    accepted = InboundEvent.objects.count()
    assert accepted == len(bodies)
    time.sleep(0.5)
    assert not all_events_finished(accepted), "the worker finished before it was killed"

    stack.start_worker("worker-2")
    # The sweeper hands stale queued events to the new worker (REQUEUE_AFTER=2s; the
    # cluster runs schedules every 30 s).
    assert wait_for(lambda: all_events_finished(accepted), 150), (
        InboundEvent.objects.filter(status="queued").count(), "events never completed"
    )
    assert InboundEvent.objects.filter(status="completed").count() == accepted
    assert Alert.objects.count() == accepted
    for n in range(5):
        [incident] = Incident.objects.filter(entity_id=f"svc-{n}")
        assert incident.alerts.count() == accepted // 5


def test_burst_reaches_the_destination_once_per_incident(stack, integration):
    sink = HTTPSink()
    try:
        hook = Destination.objects.create(name="hook", kind="webhook",
                                          config={"url": f"{sink.url}/hook"})
        integration.service.destinations.add(hook)
        stack.start_web()
        stack.start_worker()
        bodies = [
            {"message": f"m{n}", "alert_type": "critical", "entity_id": f"node-{n % 8}"}
            for n in range(32)
        ]
        results = fire_at_once(f"{stack.url}/api/events/{integration.key}/", bodies)
        assert all(status == 200 for status, _ in results)
        assert wait_for(lambda: len(sink.requests) >= 8, 90), len(sink.requests)
        time.sleep(1)  # anything extra would arrive now

        received = [r.json for r in sink.requests]
        assert len(received) == 8
        assert sorted(r["incident"]["entity_id"] for r in received) == [
            f"node-{n}" for n in range(8)
        ]
        assert {r["event"] for r in received} == {"triggered"}
        assert Delivery.objects.filter(status="sent", attempts=1).count() == 8
    finally:
        sink.close()
