"""Turning a stored inbound event into an alert on its incident: parse → rules → group →
fan-out. Each step has its module, and calls go one way:

- parse: the event's body becomes AlertFields (integrations.alert_fields) by its kind's
  parser: integrations.generic (with integrations.mapping when the integration has one),
  integrations.incoming or integrations.email_body;
- rules: integrations.rules changes the fields and returns the audit kept on the alert;
- group: integrations.grouping puts the stored alert on the incident it opens or joins,
  and acknowledges or resolves it (incidents.lifecycle);
- fan-out: nothing is sent from here. The incident's changes are signals
  (incidents.signals, integrations.signals) to which destinations and notifications
  listen; what they send goes out after the transaction commits.

Runs in django-q2 workers, in three steps:

1. The attempt is counted, in its own committed UPDATE, before any work: an attempt that
   never finishes (the task timeout killed it, the worker died) still counts, so an event
   that cannot be processed fails with its cause after TOCSIN_EVENT_MAX_ATTEMPTS instead of
   being re-queued forever (docs/architecture.md).
2. The body is parsed, mapped and run through the rules without any lock held: that is
   the slow part (a large mail, many rules), and on SQLite a worker holding the write lock
   meanwhile made concurrent ingest fail with "database is locked".
3. One short transaction locks the event (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: the
   IMMEDIATE transaction), checks it is still queued, stores the alert and groups it. A
   worker that dies mid-way releases the lock with its connection and leaves it queued.

A duplicate task for the same event (the sweeper re-queued it, the broker delivered it
twice) does nothing while an attempt is in progress, and does not count as one: step 1
only starts an attempt when the last one is certainly over, because it ended (the event is
finished, or a retryable error cleared `attempt_started_at`) or because it started longer
ago than the task timeout, which would have stopped it. So a duplicate can neither spend
the running attempt's budget nor fail the event under it.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import F, Q
from django.utils import timezone

from integrations import email_body, generic, grouping, incoming, mapping, rules, storable
from integrations.alert_fields import AlertFields
from integrations.models import Alert, InboundEvent, Integration

logger = logging.getLogger(__name__)

# Transient database trouble: leave the event queued for a retry (within its budget of
# attempts) instead of failing it at once.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)
ERROR_LIMIT = 5000

# Stands for "the integration's saved mapping" where a preview may pass an unsaved one.
SAVED = object()

QUEUED = InboundEvent.Status.QUEUED


class ProcessingError(Exception):
    """A problem with the event itself; it is marked failed and can be reprocessed."""


def process_event(event_id: int) -> str:
    if not start_attempt(event_id):
        return "failed" if give_up(event_id) else "skipped"
    try:
        event = InboundEvent.objects.select_related("integration").get(pk=event_id)
        alert = build_alert(event)
        with transaction.atomic():
            locked = (
                InboundEvent.objects.select_for_update(skip_locked=True, of=("self",))
                # With the team: the email about a new incident names it.
                .select_related("integration__service__team")
                .filter(pk=event_id, status=QUEUED)
                .first()
            )
            if locked is None:
                return "skipped"
            if locked.integration is None:
                raise ProcessingError("The integration of this event no longer exists.")
            alert.integration = locked.integration
            alert.inbound_event = locked
            alert.save(force_insert=True)
            grouping.group_alert(alert)
            InboundEvent.objects.filter(pk=event_id).update(
                status=InboundEvent.Status.COMPLETED, processed_at=timezone.now(), error="",
            )
        return "completed"
    except TRANSIENT_ERRORS as exc:
        logger.exception("Transient database error on inbound event %s", event_id)
        if retry_or_fail(event_id, f"{exc.__class__.__name__}: {exc}"):
            return "failed"
        raise
    except (ProcessingError, generic.InvalidPayload) as exc:
        mark_failed(event_id, str(exc))
        return "failed"
    except Exception as exc:
        # A bug or an unexpected state: keep the event, with the cause, for reprocessing.
        logger.exception("Processing inbound event %s failed", event_id)
        mark_failed(event_id, f"{exc.__class__.__name__}: {exc}")
        return "failed"


def start_attempt(event_id: int) -> bool:
    """Count one more attempt at a queued event that has attempts left and no attempt in
    progress. Committed on its own (outside any transaction of the task) so a task killed
    later still counted; one conditional UPDATE, so of two tasks at once only one starts."""
    return bool(
        InboundEvent.objects.filter(
            no_attempt_running(), pk=event_id, status=QUEUED,
            attempts__lt=settings.TOCSIN_EVENT_MAX_ATTEMPTS,
        ).update(attempts=F("attempts") + 1, attempt_started_at=timezone.now())
    )


def no_attempt_running() -> Q:
    """Events on which no attempt can still be running: none started, the last one ended
    leaving the event queued (attempt_started_at cleared), or it started longer ago than
    the task timeout, so django-q2 has stopped it."""
    cutoff = timezone.now() - timedelta(seconds=settings.Q_CLUSTER["timeout"])
    return Q(attempt_started_at__isnull=True) | Q(attempt_started_at__lt=cutoff)


def give_up(event_id: int) -> bool:
    """Fail a queued event whose attempts are spent and whose last attempt is over, with
    the last error recorded, or saying that no attempt finished. False if it is not such
    an event: it is finished, it has attempts left, or its last attempt may still be
    running and complete it (this is then a duplicate task, and leaves it alone)."""
    limit = settings.TOCSIN_EVENT_MAX_ATTEMPTS
    event = InboundEvent.objects.filter(
        no_attempt_running(), pk=event_id, status=QUEUED, attempts__gte=limit
    ).only("error").first()
    if event is None:
        return False
    cause = event.error or (
        "no attempt finished (each was stopped before the end, e.g. by the task timeout, "
        "TOCSIN_TASK_TIMEOUT)"
    )
    # Checked again in the UPDATE: a new attempt cannot start on a spent event, but the
    # database decides whether it is still queued and idle.
    return fail_spent(event_id, cause, no_attempt_running())


def fail_spent(event_id: int, cause: str, *conditions: Q) -> bool:
    limit = settings.TOCSIN_EVENT_MAX_ATTEMPTS
    return bool(
        InboundEvent.objects.filter(
            *conditions, pk=event_id, status=QUEUED, attempts__gte=limit
        ).update(
            status=InboundEvent.Status.FAILED, processed_at=timezone.now(),
            error=storable.text(f"Gave up after {limit} attempts. Last error: {cause}")[
                :ERROR_LIMIT],
        )
    )


def retry_or_fail(event_id: int, error: str) -> bool:
    """After a transient error: fail the event if that was its last attempt (True), else
    keep the error on it, still queued, for the sweeper to retry and for people to see."""
    try:
        # This attempt was the last one: it is over, so it fails the event itself.
        if fail_spent(event_id, error):
            return True
        # Over, so the next task may start an attempt at once rather than wait out the
        # task timeout.
        InboundEvent.objects.filter(pk=event_id, status=QUEUED).update(
            error=storable.text(error)[:ERROR_LIMIT], attempt_started_at=None,
        )
    except TRANSIENT_ERRORS:
        # The database is still unwell; the attempt is counted, the sweeper comes back.
        logger.exception("Could not record the error on inbound event %s", event_id)
    return False


def mark_failed(event_id: int, error: str) -> None:
    InboundEvent.objects.filter(pk=event_id, status=QUEUED).update(
        status=InboundEvent.Status.FAILED, error=storable.text(error)[:ERROR_LIMIT],
        processed_at=timezone.now(),
    )


def parse_event(event: InboundEvent) -> AlertFields:
    if event.integration is None:
        raise ProcessingError("The integration of this event no longer exists.")
    return parse(event.integration, event.source, bytes(event.body), event.query,
                 event.received_at)


def parse(integration: Integration, source: str, body: bytes, query: dict, received_at,
          *, mapping_config=SAVED) -> AlertFields:
    """The alert fields a request body makes, before rules. The mapping applies to the
    generic webhook's JSON only; the other kinds have their own ways to pick fields."""
    if source == "generic":
        document = generic.parse_body(body)
        config = integration.mapping if mapping_config is SAVED else mapping_config
        if config is not None:
            return mapping.alert_fields(config, document)
        return generic.validate(document)
    if source == "incoming_webhook":
        return incoming.declaration(integration, query, body)
    if source == "email":
        return email_body.alert_fields(body, received_at)
    raise ProcessingError(f"No parser for events from {source!r}.")


def build_alert(event: InboundEvent) -> Alert:
    """The alert an event makes, parsed, mapped and judged by the rules, not yet saved.
    Everything it stores is made storable first (see integrations.storable)."""
    fields = parse_event(event)
    # Rules see the time the alert arrived, so a reprocessed event is judged as it was then.
    audit = rules.apply_rules(
        fields, rules.saved_rules(event.integration),
        service_id=event.integration.service_id, now=event.received_at,
    )
    fields.ensure_entity_id()
    return Alert(
        integration=event.integration,
        alert_type=fields.alert_type,
        message=storable.text(fields.message),
        summary=storable.text(fields.summary),
        entity_id=storable.text(fields.entity_id),
        suppressed=fields.suppressed,
        payload=storable.json_value(fields.payload),
        urls=storable.json_value(fields.urls),
        extra=storable.json_value({
            "requested": {
                "sla": fields.sla, "escalation_policy": fields.escalation_policy,
                "priority": fields.priority, "tags": fields.tags, "urgency": fields.urgency,
            },
            "stakeholders": fields.stakeholders,
            "stakeholders_comms": fields.stakeholders_comms,
            **({"declare": fields.declare} if fields.declare is not None else {}),
            **({"rules": audit} if audit else {}),
            **fields.extra,
        }),
    )
