"""Handing stored inbound events to the task queue."""

import logging

from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from integrations.models import InboundEvent
from tocsin.taskqueue import broker

logger = logging.getLogger(__name__)

PROCESS_TASK = "integrations.processing.process_event"


def enqueue(event: InboundEvent) -> None:
    """Queue processing of a stored event. The event is already safe in the database, so a
    broker failure is logged, not raised: the sweeper queues events left waiting."""
    try:
        async_task(
            PROCESS_TASK, event.pk, task_name=f"inbound-{event.trace_id}", group="inbound",
            broker=broker(),
        )
    except Exception:
        logger.exception("Could not queue inbound event %s; the sweeper will retry", event.pk)


def requeue(event: InboundEvent) -> bool:
    """Put a failed event back in the queue, with a fresh budget of attempts (someone fixed
    the cause, or wants to try again). Returns False if it was not failed."""
    with transaction.atomic():
        changed = InboundEvent.objects.filter(
            pk=event.pk, status=InboundEvent.Status.FAILED
        ).update(
            status=InboundEvent.Status.QUEUED, error="", attempts=0, attempt_started_at=None,
            enqueued_at=timezone.now(),
        )
        if changed:
            transaction.on_commit(lambda: enqueue(event))
    return bool(changed)
