"""The sweeper and the pruning schedule of the ingest pipeline."""

from datetime import timedelta

from django.utils import timezone
from django_q.models import Schedule

from integrations import tasks
from integrations.models import InboundEvent, RateLimitCounter


def make_event(integration, status="queued", age_seconds=0, enqueued_age=None):
    event = InboundEvent.objects.create(
        integration=integration, source="generic", body=b'{"message": "m"}', status=status,
    )
    now = timezone.now()
    InboundEvent.objects.filter(pk=event.pk).update(
        received_at=now - timedelta(seconds=age_seconds),
        enqueued_at=None if enqueued_age is None else now - timedelta(seconds=enqueued_age),
    )
    return event


def test_migrated_database_schedules_the_sweeper_and_the_pruning(db):
    funcs = set(Schedule.objects.values_list("func", flat=True))
    assert {"integrations.tasks.requeue_stale_events",
            "integrations.tasks.prune_inbound_events"} <= funcs


def test_sweeper_requeues_only_events_left_queued_too_long(integration, settings, monkeypatch):
    settings.TOCSIN_REQUEUE_AFTER_SECONDS = 60
    queued = []
    monkeypatch.setattr("tocsin.taskqueue.async_task", lambda f, pk, **k: queued.append(pk))
    stale = make_event(integration, age_seconds=600, enqueued_age=600)
    never_queued = make_event(integration, age_seconds=5, enqueued_age=None)
    fresh = make_event(integration, age_seconds=5, enqueued_age=5)
    done = make_event(integration, status="completed", age_seconds=600, enqueued_age=600)
    failed = make_event(integration, status="failed", age_seconds=600, enqueued_age=600)

    assert tasks.requeue_stale_events() == 2
    assert sorted(queued) == sorted([stale.pk, never_queued.pk])
    stale.refresh_from_db()
    assert stale.enqueued_at > timezone.now() - timedelta(seconds=5)
    # Just requeued: not again on the next run.
    assert tasks.requeue_stale_events() == 0
    assert {fresh.pk, done.pk, failed.pk}.isdisjoint(queued)


def test_broker_failure_leaves_event_queued_for_the_sweeper(client, integration, monkeypatch,
                                                           django_capture_on_commit_callbacks):
    def broker_down(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr("tocsin.taskqueue.async_task", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/events/{integration.key}/", data={"message": "m"},
                               content_type="application/json")
    assert response.status_code == 200
    event = InboundEvent.objects.get(trace_id=response.json()["trace_id"])
    assert event.status == "queued"


def test_prune_deletes_old_processed_events_and_keeps_failed_ones(integration, settings):
    settings.TOCSIN_EVENT_RETENTION_DAYS = 7
    week = 7 * 24 * 3600
    old_done = make_event(integration, status="completed", age_seconds=week + 60)
    old_rejected = make_event(integration, status="rejected", age_seconds=week + 60)
    old_failed = make_event(integration, status="failed", age_seconds=week + 60)
    recent = make_event(integration, status="completed", age_seconds=week - 3600)
    RateLimitCounter.objects.create(scope="integration:1", slot=1, hits=3)

    assert tasks.prune_inbound_events() == 2
    remaining = set(InboundEvent.objects.values_list("pk", flat=True))
    assert remaining == {old_failed.pk, recent.pk}
    assert old_done.pk not in remaining and old_rejected.pk not in remaining
    assert not RateLimitCounter.objects.filter(slot=1).exists()


def test_status_of_a_pruned_event_is_404(client, integration, settings):
    settings.TOCSIN_EVENT_RETENTION_DAYS = 1
    event = make_event(integration, status="completed", age_seconds=2 * 24 * 3600)
    tasks.prune_inbound_events()
    assert client.get(f"/api/alert/status/{event.trace_id}/").status_code == 404
