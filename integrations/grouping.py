"""Grouping: which incident a new alert belongs to, and what it changes there.

An alert joins the open (not resolved) incident of its service with the same entity_id.
With none open, an alert that declares an incident (the incoming webhook), or whose type
the integration has in create_incidents_for, opens one; any other alert stays on its own.
A suppressed alert is stored and groups nowhere. The alert then goes on the incident's
timeline with what its rules added (notes, tags), and an `acknowledged` or `resolved`
alert acknowledges or resolves the incident (docs/generic-webhook.md).

Runs inside the processing transaction, after the alert is stored (integrations.processing);
the incident changes it makes are announced by the lifecycle's signals.
"""

from django.db import DatabaseError, IntegrityError, transaction

from incidents import lifecycle
from incidents.models import SLA, EscalationPolicy, Incident, Priority, TimelineEntry
from integrations.alert_fields import URGENCY_FOR_TYPE
from integrations.lookups import find, find_by_id, find_tags
from integrations.models import Alert, AlertRule, AlertType
from integrations.signals import alert_opened_incident


def group_alert(alert: Alert) -> Incident | None:
    """Put a stored alert on its incident, opening one if it should; returns the incident
    (None when the alert stays on its own)."""
    if alert.suppressed:
        return None
    incident = find_open_incident(alert)
    opened = False
    if incident is None and ("declare" in alert.extra
                             or alert.integration.opens_incidents_for(alert.alert_type)):
        incident = open_for_alert(alert)
        opened = incident is not None
        if incident is None:
            incident = find_open_incident(alert)
            if incident is None:
                raise DatabaseError("Lost the race to open an incident and found none open.")
    if incident is None:
        return None  # info, a type not in create_incidents_for, or ack/resolve of nothing

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
    add_rule_additions(alert, incident, opened=opened)
    follow_alert_status(alert, incident)
    return incident


def find_open_incident(alert: Alert) -> Incident | None:
    # With service and team, which an acknowledge or resolve records deliveries and an
    # email for (two queries saved); locking the incident row only, not theirs, so alerts
    # for other incidents of the service never wait on this one.
    return (
        Incident.objects.select_for_update(of=("self",))
        .select_related("service__team")
        .filter(service_id=alert.integration.service_id, entity_id=alert.entity_id)
        .exclude(status=Incident.Status.RESOLVED)
        .first()
    )


def open_for_alert(alert: Alert) -> Incident | None:
    """Open an incident for the alert, or None when a concurrent alert for the same entity
    opened one first: the partial unique constraint on open incidents (service, entity_id)
    refuses the second, and the caller joins the first."""
    requested = alert.extra.get("requested", {})
    declared = alert.extra.get("declare") or {
        "severity": alert.extra.get("severity") or alert.alert_type
    }
    try:
        # A savepoint, so the refused INSERT leaves the processing transaction usable.
        with transaction.atomic():
            return lifecycle.open_incident(
                service=alert.integration.service,
                title=alert.message,
                summary=alert.summary,
                entity_id=alert.entity_id,
                **declared,
                urgency=requested.get("urgency")
                or URGENCY_FOR_TYPE.get(alert.alert_type, Incident.Urgency.HIGH),
                # A mapping or a rule may name the priority; a payload gives its id.
                priority=find(Priority, requested.get("priority")),
                sla=find_by_id(SLA, requested.get("sla")),
                escalation_policy=find_by_id(EscalationPolicy,
                                             requested.get("escalation_policy")),
                tags=find_tags(requested.get("tags") or []),
            )
    except IntegrityError:
        return None


def add_rule_additions(alert: Alert, incident: Incident, *, opened: bool) -> None:
    """Notes and tags from alert rules go on the incident the alert opened or joined. (An
    opened incident already got the tags, with the payload's, in open_for_alert.)"""
    notes, tags = rule_additions(alert.extra.get("rules") or [])
    for rule_name, text in notes:
        lifecycle.add_note(incident, f"Alert rule “{rule_name}”: {text}")
    if tags and not opened:
        incident.tags.add(*find_tags(tags))


def rule_additions(audit: list[dict]) -> tuple[list[tuple[str, str]], list]:
    """The notes ((rule name, text)) and tags the rules in an alert's audit (written by
    integrations.rules.apply_rules) added."""
    notes, tags = [], []
    for entry in audit:
        for action in entry["actions"]:
            if action["type"] == AlertRule.Action.ADD_NOTE:
                notes.append((entry["name"], action["value"]))
            elif action["type"] == AlertRule.Action.ADD_TAGS:
                tags.extend(action["value"])
    return notes, tags


def follow_alert_status(alert: Alert, incident: Incident) -> None:
    """An `acknowledged` or `resolved` alert acknowledges or resolves its incident."""
    if alert.alert_type == AlertType.ACKNOWLEDGED:
        lifecycle.acknowledge(incident, note=f"by alert from {alert.integration.name}")
    elif alert.alert_type == AlertType.RESOLVED:
        lifecycle.resolve(incident, note=f"by alert from {alert.integration.name}")
