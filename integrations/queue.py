"""Handing stored inbound events to the task queue."""

from django.db import transaction
from django.utils import timezone

from integrations.models import InboundEvent
from tocsin import taskqueue

PROCESS_TASK = "integrations.processing.process_event"


def enqueue(event: InboundEvent) -> None:
    """Queue processing of a stored event. A broker failure is logged, not raised
    (tocsin.taskqueue): the sweeper queues events left waiting."""
    taskqueue.enqueue(PROCESS_TASK, event.pk, name=f"inbound-{event.trace_id}", group="inbound")


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
