"""Escalations: the entry point every escalation goes through, and SLA breach detection.

``escalate`` records the escalation on the incident's timeline once (keyed), and announces
it with the ``incident_escalated`` signal in the same transaction, so listeners (the
portal's Escalations emails) record their work atomically with it. Escalation policy steps
will call the same function when they run.
"""

from datetime import timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from incidents.models import SLA, Incident, TimelineEntry
from incidents.signals import incident_escalated

Status = Incident.Status


def escalate(incident: Incident, *, reason: str, key: str, actor=None) -> bool:
    """Record one escalation (``actor``: the person who asked for it, if one did). Returns
    False when this key was already recorded."""
    with transaction.atomic():
        # Lock the incident so two sweepers cannot both find the key missing.
        Incident.objects.select_for_update().filter(pk=incident.pk).first()
        if incident.timeline.filter(kind=TimelineEntry.Kind.ESCALATION,
                                    data__key=key).exists():
            return False
        TimelineEntry.objects.create(
            incident=incident, kind=TimelineEntry.Kind.ESCALATION, message=reason,
            data={"key": key}, actor=actor,
        )
        incident_escalated.send(sender=Incident, incident=incident, reason=reason, key=key,
                                actor=actor)
    return True


def breached(candidates, sla: SLA, within: str, key: str):
    """Incidents under ``sla`` whose allowance (``within`` minutes) has passed and that have
    not been escalated for it yet; excluding those keeps the sweep small however many
    breached incidents stay open."""
    already = TimelineEntry.objects.filter(
        incident=OuterRef("pk"), kind=TimelineEntry.Kind.ESCALATION, data__key=key
    )
    deadline = timezone.now() - timedelta(minutes=getattr(sla, within))
    return candidates.filter(sla=sla, created_at__lt=deadline).exclude(Exists(already))


SLA_CHECKS = [
    # (which incidents, SLA field, escalation key, what was missed)
    ({"status": Status.TRIGGERED}, "acknowledge_within_minutes", "sla-acknowledge",
     "acknowledged"),
    ({"status__in": [Status.TRIGGERED, Status.ACKNOWLEDGED]}, "resolve_within_minutes",
     "sla-resolve", "resolved"),
]


def check_sla_breaches(limit: int = 500) -> int:
    """Every minute (a django-q2 schedule): escalate incidents past their SLA, once each."""
    escalated = 0
    for states, within, key, missed in SLA_CHECKS:
        # SLAs are few; asking per SLA keeps the deadline a plain comparison on every database.
        for sla in SLA.objects.filter(**{f"{within}__isnull": False}):
            for incident in breached(Incident.objects.filter(**states), sla, within, key)[:limit]:
                escalated += escalate(
                    incident, key=key,
                    reason=f"SLA {sla.name} breached: not {missed} within "
                           f"{getattr(sla, within)} minutes",
                )
    return escalated
