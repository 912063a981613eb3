"""Turning a stored inbound event into an alert, and the alert into incident changes.

Runs in django-q2 workers. The event row is locked (PostgreSQL: FOR UPDATE SKIP LOCKED;
SQLite: the IMMEDIATE transaction) for the whole of its processing, so a duplicate task
for the same event finds it locked or finished and does nothing; a worker that dies
mid-way releases the lock with its connection and leaves the event queued.
"""

import logging

from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from incidents import lifecycle
from incidents.models import SLA, EscalationPolicy, Incident, Priority, Tag, TimelineEntry
from integrations import email_body, generic, incoming, mapping, rules
from integrations.models import INCIDENT_OPENING_TYPES, Alert, AlertType, InboundEvent, Integration
from integrations.signals import alert_opened_incident

logger = logging.getLogger(__name__)

# Transient database trouble: leave the event queued for a retry instead of failing it.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)

# Stands for "the integration's saved mapping" where a preview may pass an unsaved one.
SAVED = object()


class ProcessingError(Exception):
    """A problem with the event itself; it is marked failed and can be reprocessed."""


def process_event(event_id: int) -> str:
    try:
        with transaction.atomic():
            event = (
                InboundEvent.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("integration__service")
                .filter(pk=event_id, status=InboundEvent.Status.QUEUED)
                .first()
            )
            if event is None:
                return "skipped"
            alert = build_alert(event)
            route_alert(alert)
            event.status = InboundEvent.Status.COMPLETED
            event.processed_at = timezone.now()
            event.attempts += 1
            event.error = ""
            event.save(update_fields=["status", "processed_at", "attempts", "error"])
        return "completed"
    except TRANSIENT_ERRORS:
        logger.exception("Transient database error on inbound event %s; will retry", event_id)
        raise
    except (ProcessingError, generic.InvalidPayload) as exc:
        mark_failed(event_id, str(exc))
        return "failed"
    except Exception as exc:
        # A bug or an unexpected state: keep the event, with the cause, for reprocessing.
        logger.exception("Processing inbound event %s failed", event_id)
        mark_failed(event_id, f"{exc.__class__.__name__}: {exc}")
        return "failed"


def mark_failed(event_id: int, error: str) -> None:
    InboundEvent.objects.filter(pk=event_id, status=InboundEvent.Status.QUEUED).update(
        status=InboundEvent.Status.FAILED, error=error[:5000], processed_at=timezone.now(),
    )


def parse_event(event: InboundEvent) -> generic.AlertFields:
    if event.integration is None:
        raise ProcessingError("The integration of this event no longer exists.")
    return parse(event.integration, event.source, bytes(event.body), event.query,
                 event.received_at)


def parse(integration: Integration, source: str, body: bytes, query: dict, received_at,
          *, mapping_config=SAVED) -> generic.AlertFields:
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
    fields = parse_event(event)
    # Rules see the time the alert arrived, so a reprocessed event is judged as it was then.
    audit = rules.apply_rules(
        fields, rules.saved_rules(event.integration),
        service_id=event.integration.service_id, now=event.received_at,
    )
    fields.ensure_entity_id()
    return Alert.objects.create(
        integration=event.integration,
        inbound_event=event,
        alert_type=fields.alert_type,
        message=fields.message,
        summary=fields.summary,
        entity_id=fields.entity_id,
        suppressed=fields.suppressed,
        payload=fields.payload,
        urls=fields.urls,
        extra={
            "requested": {
                "sla": fields.sla, "escalation_policy": fields.escalation_policy,
                "priority": fields.priority, "tags": fields.tags, "urgency": fields.urgency,
            },
            "stakeholders": fields.stakeholders,
            "stakeholders_comms": fields.stakeholders_comms,
            **({"declare": fields.declare} if fields.declare is not None else {}),
            **({"rules": audit} if audit else {}),
            **fields.extra,
        },
    )


def _by_id(model, raw):
    """Look up an id sent in a payload; unknown or malformed ids are ignored (None)."""
    if raw is None or isinstance(raw, bool):
        return None
    try:
        return model.objects.filter(pk=int(str(raw).strip())).first()
    except (TypeError, ValueError):
        return None


def find_tags(raw) -> list:
    """Tags by id (as sent in a payload) or by name (as a rule may add them); unknown ones
    are ignored. Two queries at most, however many are named: ids first, then names (a
    number that is no tag's id may still be a tag's name)."""
    texts = [str(item).strip() for item in raw if item is not None and not isinstance(item, bool)]
    texts = [text for text in texts if text]
    by_id = {tag.pk: tag for tag in Tag.objects.filter(
        pk__in=[int(text) for text in texts if text.isdigit()])} if texts else {}
    names = [text for text in texts if not (text.isdigit() and int(text) in by_id)]
    if names:
        matching = Q()
        for name in names:
            matching |= Q(name__iexact=name)
        by_id.update({tag.pk: tag for tag in Tag.objects.filter(matching)})
    return list(by_id.values())


def find_open_incident(alert: Alert) -> Incident | None:
    return (
        Incident.objects.select_for_update()
        .filter(service_id=alert.integration.service_id, entity_id=alert.entity_id)
        .exclude(status=Incident.Status.RESOLVED)
        .first()
    )


def opens_incidents(alert: Alert) -> bool:
    return (
        alert.alert_type in INCIDENT_OPENING_TYPES
        and alert.alert_type in (alert.integration.create_incidents_for or [])
    )


def open_for_alert(alert: Alert) -> Incident | None:
    """Open an incident for the alert, or return the one a concurrent alert just opened."""
    requested = alert.extra.get("requested", {})
    declared = alert.extra.get("declare") or {
        "severity": alert.extra.get("severity") or alert.alert_type
    }
    try:
        with transaction.atomic():
            return lifecycle.open_incident(
                service=alert.integration.service,
                title=alert.message,
                summary=alert.summary,
                entity_id=alert.entity_id,
                **declared,
                urgency=requested.get("urgency")
                or generic.URGENCY_FOR_TYPE.get(alert.alert_type, Incident.Urgency.HIGH),
                # A mapping or a rule may name the priority; a payload gives its id.
                priority=rules.find(Priority, requested.get("priority")),
                sla=_by_id(SLA, requested.get("sla")),
                escalation_policy=_by_id(EscalationPolicy, requested.get("escalation_policy")),
                tags=find_tags(requested.get("tags") or []),
            )
    except IntegrityError:
        # Another worker opened the incident for this entity first: join it.
        return None


def route_alert(alert: Alert) -> None:
    """Apply the grouping rules (PRODUCT.md §2) to a new alert."""
    if alert.suppressed:
        return
    incident = find_open_incident(alert)
    opened = False
    declares = "declare" in alert.extra
    if incident is None and (declares or opens_incidents(alert)):
        incident = open_for_alert(alert)
        opened = incident is not None
        if incident is None:
            incident = find_open_incident(alert)
            if incident is None:
                raise DatabaseError("Lost the race to open an incident and found none open.")
    if incident is None:
        return  # info, a type not in create_incidents_for, or ack/resolve of nothing

    alert.incident = incident
    alert.opened_incident = opened
    alert.save(update_fields=["incident", "opened_incident"])
    if opened:
        alert_opened_incident.send(sender=Alert, alert=alert, incident=incident)
    TimelineEntry.objects.create(
        incident=incident, kind=TimelineEntry.Kind.ALERT,
        message=f"{alert.get_alert_type_display()} alert: {alert.message}",
        data={"alert_id": alert.pk},
    )
    apply_rule_additions(alert, incident, opened=opened)
    if alert.alert_type == AlertType.ACKNOWLEDGED:
        lifecycle.acknowledge(incident, note=f"by alert from {alert.integration.name}")
    elif alert.alert_type == AlertType.RESOLVED:
        lifecycle.resolve(incident, note=f"by alert from {alert.integration.name}")


def apply_rule_additions(alert: Alert, incident: Incident, *, opened: bool) -> None:
    """Notes and tags from alert rules go on the incident the alert opened or joined. (An
    opened incident already got the tags, with the payload's, in open_for_alert.)"""
    notes, tags = rules.additions(alert.extra.get("rules") or [])
    for rule_name, text in notes:
        lifecycle.add_note(incident, f"Alert rule “{rule_name}”: {text}")
    if tags and not opened:
        incident.tags.add(*find_tags(tags))
