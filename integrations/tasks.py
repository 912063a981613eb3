"""The ingest pipeline's periodic jobs, run by django-q2 schedules (declared in tocsin.jobs)."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from integrations import idempotency, processing, queue, ratelimit
from integrations.models import InboundEvent

SWEEP_BATCH = 1000


def requeue_stale_events() -> int:
    """Hand events that have waited too long to the queue again.

    Covers a broker that refused the task, a Redis broker that lost it, or a worker killed
    while holding it. An event with an attempt still running (started less than the task
    timeout ago) is left alone: a task for it would do nothing, and failing it would lose
    the alert the attempt is about to store. An event whose attempts are spent and whose
    last attempt is over (it never finished) is failed here instead, with its cause, so
    nothing is re-queued forever.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.TOCSIN_REQUEUE_AFTER_SECONDS)
    stale = InboundEvent.objects.filter(
        processing.no_attempt_running(), status=InboundEvent.Status.QUEUED
    ).filter(Q(enqueued_at__lt=cutoff) | Q(enqueued_at__isnull=True))
    events = list(
        stale.only("pk", "trace_id", "attempts").order_by("received_at")[:SWEEP_BATCH]
    )
    spent = {e.pk for e in events if e.attempts >= settings.TOCSIN_EVENT_MAX_ATTEMPTS}
    for pk in spent:
        processing.give_up(pk)
    events = [e for e in events if e.pk not in spent]
    InboundEvent.objects.filter(pk__in=[e.pk for e in events]).update(
        enqueued_at=timezone.now()
    )
    for event in events:
        queue.enqueue(event)
    return len(events)


def prune_inbound_events() -> int:
    """Delete processed events past the retention period. Failed ones wait for a person."""
    cutoff = timezone.now() - timedelta(days=settings.TOCSIN_EVENT_RETENTION_DAYS)
    deleted, _ = InboundEvent.objects.filter(
        received_at__lt=cutoff,
        status__in=[InboundEvent.Status.COMPLETED, InboundEvent.Status.REJECTED],
    ).delete()
    ratelimit.prune_old_windows()
    # Keys past their 24 hours: a new request with one of them is a new request.
    idempotency.prune()
    return deleted
