"""Deliveries: recording what must be sent, sending it once per attempt, and recording how
it went. Deliveries are an outbox (tocsin/outbox.py); this module fills its hooks.

Lifecycle of a delivery:
1. ``record_deliveries`` runs inside the transaction that changed the incident and inserts
   one pending row per destination (a unique constraint drops repeats). After commit the
   rows are handed to the queue.
2. ``send_delivery`` (a django-q2 task) claims the row with a conditional UPDATE that only
   one worker can win, builds the kind's message and sends it through tocsin.transport.http.
3. The outcome is written back in one transaction with what follows from it (the
   destination's failure count, the timeline entry, a Platform Action): sent; failed
   (permanent error, or attempts used up); or pending again with ``next_attempt_at`` set
   by exponential backoff (or a longer Retry-After) and a one-off schedule to try then. The
   minute sweeper re-queues anything left behind.

Order: the deliveries of one (destination, incident) go out one at a time, in the order the
events happened. The claim's UPDATE does not match a delivery while an earlier one of its
pair is pending (``Delivery.behind_earlier_pending``); such a delivery is *waiting*, says so
in its ``error``, and is queued again when the earlier one is sent or finally fails. A later
event sent after an earlier one failed says that on its record too.
"""

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from destinations.kinds import kind_for
from destinations.kinds.base import Message
from destinations.models import Delivery, Destination
from destinations.signals import destination_failing
from incidents.links import incident_url
from incidents.models import Incident, TimelineEntry
from tocsin.links import portal_url
from tocsin.outbox import Outbox
from tocsin.transport import Result, TransportError, http
from tocsin.transport.http import EXCERPT_CHARS

logger = logging.getLogger(__name__)

Status = Delivery.Status


class DeliveryOutbox(Outbox):
    model = Delivery
    task = "destinations.sending.send_delivery"
    group = "deliveries"
    select_related = ("destination", "incident__service__team")

    def send(self, delivery: Delivery) -> Result:
        with http.one_send():
            return kind_for(delivery.destination.kind).send(build_message(delivery))

    def waiting(self):
        return Delivery.behind_earlier_pending()

    def claim_refused(self, delivery_id: int) -> str:
        blocker = note_waiting(delivery_id)
        if blocker is not None:
            return f"waiting for delivery #{blocker.pk}"
        return super().claim_refused(delivery_id)

    def note(self, delivery: Delivery) -> str:
        return after_failures_note(delivery)

    def sent_fields(self, result: Result) -> dict:
        return {"response_status": result.status,
                "response_body": result.body[:EXCERPT_CHARS],
                "remote_id": result.remote_id[:255]}

    def failure_fields(self, error: TransportError) -> dict:
        return {"response_status": error.status, "response_body": error.body[:EXCERPT_CHARS]}

    def on_sent(self, delivery: Delivery, result: Result) -> None:
        # Only write to the destination when it had been failing: the common case costs
        # nothing.
        Destination.objects.filter(pk=delivery.destination_id).filter(
            Q(consecutive_failures__gt=0) | Q(failing=True)
        ).update(consecutive_failures=0, failing=False, last_error="")
        add_timeline_entry(delivery, f"Sent to {delivery.destination.name}"
                           + (f" (HTTP {result.status})" if result.status else ""))
        queue_next(delivery)

    def on_failed(self, delivery: Delivery, error: TransportError) -> None:
        # Finally failed: the later events of the incident must not wait for it any longer.
        queue_next(delivery)
        attempts = delivery.attempts
        note_destination_failure(delivery.destination, str(error))
        add_timeline_entry(
            delivery, f"Delivery to {delivery.destination.name} failed after "
                      f"{attempts} attempt{'s' if attempts != 1 else ''}: {str(error)[:300]}",
        )


delivery_outbox = DeliveryOutbox()


def record_deliveries(sender, incident: Incident, new_status: str, actor=None, **kwargs):
    """incident_status_recorded receiver: one pending delivery per destination."""
    destinations = incident.service.destinations.all()
    if incident.drill:
        destinations = destinations.filter(send_drills=True)
    now = timezone.now()
    rows = [
        Delivery(destination=destination, incident=incident, event=new_status,
                 actor=str(actor or "")[:150], next_attempt_at=now)
        for destination in destinations
    ]
    if not rows:
        return
    Delivery.objects.bulk_create(rows, ignore_conflicts=True)
    transaction.on_commit(lambda: queue_pending(incident.pk, new_status))


def queue_pending(incident_id: int, event: str) -> None:
    delivery_outbox.enqueue_pending(incident_id=incident_id, event=event)


def send_delivery(delivery_id: int) -> str:
    """The queue task. Returns what happened, for the task log."""
    return delivery_outbox.process(delivery_id)


def note_waiting(delivery_id: int) -> Delivery | None:
    """After a refused claim: if the delivery waits behind an earlier one of its pair, say
    so on its record (the admin and API show ``error``) and return that earlier one."""
    waiting = Delivery.objects.filter(
        pk=delivery_id, status=Status.PENDING, incident__isnull=False
    ).first()
    if waiting is None:
        return None
    blocker = waiting.same_pair().filter(pk__lt=delivery_id, status=Status.PENDING).first()
    if blocker is None:
        return None
    # Conditional, so a note never lands on a delivery that has meanwhile been claimed
    # (its outcome rewrites ``error``) or whose earlier sibling has just finished.
    Delivery.objects.filter(pk=delivery_id, status=Status.PENDING, attempts=0).filter(
        Delivery.behind_earlier_pending()
    ).update(error=f"Waiting for the earlier '{blocker.event}' delivery #{blocker.pk} to be "
                   "sent or to fail; this one goes out right after it.")
    return blocker


def after_failures_note(delivery: Delivery) -> str:
    """For the record of a delivery sent after earlier ones of its pair failed: the remote
    side never heard of those events, which a person reading the log needs to know."""
    if delivery.incident_id is None:
        return ""
    failed = delivery.same_pair().filter(pk__lt=delivery.pk, status=Status.FAILED)
    return " ".join(f"Sent after the earlier '{earlier.event}' delivery #{earlier.pk} failed."
                    for earlier in failed.only("pk", "event"))


def queue_next(delivery: Delivery) -> None:
    """A delivery of an incident is finished (sent or failed): queue the next one of its
    pair, which may be waiting for it. If this is lost, the sweeper queues it."""
    if delivery.incident_id is None:
        return
    following = delivery.same_pair().filter(
        pk__gt=delivery.pk, status=Status.PENDING).values_list("pk", flat=True).first()
    if following is not None:
        delivery_outbox.enqueue_on_commit(following)


def build_message(delivery: Delivery) -> Message:
    # Defaults fill keys a config saved before they existed (or written by hand) lacks.
    fields = kind_for(delivery.destination.kind).FIELDS
    config = {**{f.name: f.default for f in fields if f.default is not None},
              **delivery.destination.config}
    incident = delivery.incident
    if incident is None:
        return test_message(delivery, config)
    occurred = {
        "acknowledged": incident.acknowledged_at, "resolved": incident.resolved_at,
    }.get(delivery.event) or incident.created_at
    return Message(
        event=delivery.event, config=config, delivery_id=str(delivery.uuid),
        incident_id=incident.pk, number=incident.number, unique_id=incident.unique_id,
        title=incident.title, summary=incident.summary, status=incident.status,
        urgency=incident.urgency, severity=incident.severity,
        priority=str(incident.priority or ""), service=incident.service.name,
        team=incident.service.team.name, entity_id=incident.entity_id, drill=incident.drill,
        url=incident_url(incident.pk), created_at=incident.created_at, occurred_at=occurred,
        actor=delivery.actor, labels=incident.labels,
        tags=list(incident.tags.values_list("name", flat=True)),
    )


def test_message(delivery: Delivery, config: dict) -> Message:
    return Message(
        event="test", config=config, delivery_id=str(delivery.uuid), incident_id=None,
        number=None, unique_id=f"test-{delivery.pk}",
        title=f"Test notification from Tocsin to {delivery.destination.name}",
        summary="This is a test sent from Tocsin. No incident is involved.",
        status="test", urgency="low", severity="info", priority="", service="Tocsin",
        team="", entity_id="tocsin-test", drill=False,
        url=portal_url(reverse("admin:destinations_destination_change",
                               args=[delivery.destination_id])),
        created_at=delivery.created_at, occurred_at=timezone.now(), actor=delivery.actor,
    )


def note_destination_failure(destination: Destination, error: str) -> None:
    Destination.objects.filter(pk=destination.pk).update(
        consecutive_failures=F("consecutive_failures") + 1, last_error=error[:2000]
    )
    # Only the worker whose UPDATE flips the flag announces it, so it is announced once.
    flipped = Destination.objects.filter(
        pk=destination.pk, failing=False,
        consecutive_failures__gte=settings.TOCSIN_DESTINATION_FAILING_AFTER,
    ).update(failing=True)
    if flipped:
        destination.refresh_from_db()
        destination_failing.send(sender=Destination, destination=destination, error=error)


def add_timeline_entry(delivery: Delivery, message: str) -> None:
    if delivery.incident_id is None:
        return
    TimelineEntry.objects.create(
        incident_id=delivery.incident_id, kind=TimelineEntry.Kind.DELIVERY, message=message,
        data={"delivery": delivery.pk, "destination": delivery.destination_id,
              "event": delivery.event},
    )


def resend(delivery: Delivery) -> bool:
    """Send a finished delivery again (same delivery id, so receivers can tell), and after
    it, in order, the later finished deliveries of its destination and incident: a trigger
    re-sent alone after the resolve would reopen the incident on the other side for good.
    Returns False, changing nothing, while it or a later one of the pair is still pending:
    that one may be in flight, and the re-sent earlier event would then arrive after it."""
    with transaction.atomic():
        if delivery.incident_id is None:
            rows = [delivery.pk]
        else:
            # The incident's row serialises this with its state changes, which insert new
            # deliveries for the pair (and with other re-sends of the pair): a resolve
            # recorded meanwhile is either seen here (pending, so refused) or inserted
            # after this commits (so it waits behind the re-sent rows).
            list(Incident.objects.select_for_update().filter(pk=delivery.incident_id)
                 .values_list("pk", flat=True))
            later = delivery.same_pair().filter(pk__gte=delivery.pk)
            if later.filter(status=Status.PENDING).exists():
                return False
            rows = list(later.values_list("pk", flat=True))
        if not delivery_outbox.reopen(rows):
            return False
        delivery_outbox.enqueue_on_commit(delivery.pk)
    return True


def send_test(destination: Destination, *, actor=None) -> Delivery:
    """Send a test now, in the caller's request, so the person who asked sees the outcome
    at once. It is recorded like any delivery; a retryable failure is retried as usual."""
    delivery = Delivery.objects.create(
        destination=destination, event=Delivery.Event.TEST, actor=str(actor or "")[:150],
        next_attempt_at=timezone.now(),
    )
    with http.shorter_deadline(http.TEST_SEND_DEADLINE_SECONDS):
        send_delivery(delivery.pk)
    delivery.refresh_from_db()
    return delivery


def queue_due_deliveries(limit: int = 1000) -> int:
    """The minute sweeper's task: queue again the deliveries whose task was lost."""
    return delivery_outbox.sweep(limit)
