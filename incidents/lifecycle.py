"""Incident state changes. Every change is a conditional UPDATE, so two responders (or a
responder and an alert) acting at once change the state once and write one timeline entry."""

from django.db import transaction
from django.utils import timezone

from incidents.models import Incident, IncidentCounter, TimelineEntry
from incidents.signals import incident_status_changed, incident_status_recorded

Status = Incident.Status


def next_incident_number() -> int:
    """Hand out the next portal-wide incident number; call inside a transaction."""
    counter = IncidentCounter.objects.select_for_update().filter(pk=1).first()
    if counter is None:
        # First incident ever (or a flushed test database): create the row, tolerating a
        # concurrent creator, then lock it like everyone else.
        IncidentCounter.objects.bulk_create([IncidentCounter(pk=1)], ignore_conflicts=True)
        counter = IncidentCounter.objects.select_for_update().get(pk=1)
    counter.last_number += 1
    counter.save(update_fields=["last_number"])
    return counter.last_number


def open_incident(*, tags=(), actor=None, **fields) -> Incident:
    """Create a triggered incident. Raises IntegrityError when the service already has an
    open incident for the entity_id (the partial unique constraint decides)."""
    with transaction.atomic():
        incident = Incident.objects.create(number=next_incident_number(), **fields)
        if tags:
            incident.tags.set(tags)
        TimelineEntry.objects.create(
            incident=incident, kind=TimelineEntry.Kind.TRIGGERED,
            message="Incident triggered", actor=actor,
        )
        incident_status_recorded.send(
            sender=Incident, incident=incident, old_status=None,
            new_status=Status.TRIGGERED, actor=actor,
        )
        transaction.on_commit(
            lambda: incident_status_changed.send(
                sender=Incident, incident=incident, old_status=None,
                new_status=Status.TRIGGERED, actor=actor,
            )
        )
    return incident


def _change_status(incident, *, allowed_from, new_status, timestamp_field, actor, note,
                   extra=None):
    now = timezone.now()
    extra = extra or {}
    with transaction.atomic():
        changed = Incident.objects.filter(pk=incident.pk, status__in=allowed_from).update(
            status=new_status, **{timestamp_field: now}, **extra
        )
        if not changed:
            incident.refresh_from_db()
            return False
        old_status = incident.status
        incident.status = new_status
        setattr(incident, timestamp_field, now)
        for field, value in extra.items():
            setattr(incident, field, value)
        by = f" by {actor}" if actor else ""
        TimelineEntry.objects.create(
            incident=incident, kind=new_status,
            message=f"{Status(new_status).label}{by}" + (f": {note}" if note else ""),
            actor=actor,
        )
        incident_status_recorded.send(
            sender=Incident, incident=incident, old_status=old_status,
            new_status=new_status, actor=actor,
        )
        transaction.on_commit(
            lambda: incident_status_changed.send(
                sender=Incident, incident=incident, old_status=old_status,
                new_status=new_status, actor=actor,
            )
        )
    return True


def acknowledge(incident: Incident, *, actor=None, note: str = "") -> bool:
    """Acknowledge a triggered incident. Returns False if it was not triggered."""
    return _change_status(
        incident, allowed_from=[Status.TRIGGERED], new_status=Status.ACKNOWLEDGED,
        timestamp_field="acknowledged_at", actor=actor, note=note,
        extra={"acknowledged_by": actor},
    )


def resolve(incident: Incident, *, actor=None, note: str = "") -> bool:
    """Resolve an open incident. Returns False if it was already resolved."""
    return _change_status(
        incident, allowed_from=[Status.TRIGGERED, Status.ACKNOWLEDGED],
        new_status=Status.RESOLVED, timestamp_field="resolved_at", actor=actor, note=note,
    )


def add_note(incident: Incident, text: str, *, actor=None) -> TimelineEntry:
    return TimelineEntry.objects.create(
        incident=incident, kind=TimelineEntry.Kind.NOTE, message=text, actor=actor
    )
