"""What an integration would make of a body: the alert fields after mapping and rules, which
rules matched and what would happen next, without storing anything. Runs the same parsing,
mapping and rule code as the worker (processing.parse, rules.apply_rules) and finds what
the alert names as grouping would (integrations.lookups)."""

import json

from django.conf import settings
from django.utils import timezone

from incidents.models import EscalationPolicy, Incident, Priority
from integrations import generic, mapping, processing, rules
from integrations.alert_fields import AlertFields
from integrations.lookups import find, find_tags
from integrations.models import InboundEvent, Integration

RECENT_EVENTS = 20

WOULD_FAIL = "the event would fail (it is kept and can be reprocessed)"
REFUSED = "refused at the door: the webhook answers 400 and stores the event as rejected"


class InvalidConfiguration(Exception):
    """What was given to try cannot be tried: the unsaved mapping or rules are malformed,
    or the pasted payload is too large; `errors` maps each to its list of problems."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))
        self.errors = errors


def recent_events(integration: Integration):
    return (
        InboundEvent.objects.filter(integration=integration)
        .exclude(status=InboundEvent.Status.REJECTED)
        .defer("body").order_by("-received_at")[:RECENT_EVENTS]
    )


def body_bytes(payload) -> bytes:
    """A pasted payload: JSON given as an object is encoded; text (a raw mail, JSON typed
    in a textarea) is taken as it is. Past TOCSIN_PREVIEW_MAX_PAYLOAD_BYTES it is refused:
    the preview runs the saved regexes in the web process for anyone who may view the
    integration. (A received event was bounded when it was received.)"""
    if isinstance(payload, str):
        body = payload.encode("utf-8", "surrogatepass")
    else:
        body = json.dumps(payload).encode()
    limit = settings.TOCSIN_PREVIEW_MAX_PAYLOAD_BYTES
    if len(body) > limit:
        raise InvalidConfiguration({"payload": [
            f"is {len(body)} bytes; the preview takes payloads of at most {limit} bytes"
        ]})
    return body


def _name(model, value, *, names=True):
    found = find(model, value, names=names)
    return None if found is None else {"id": found.pk, "name": found.name}


def _outcome(integration: Integration, fields: AlertFields) -> str:
    if fields.suppressed:
        return "suppressed: stored, opens nothing and notifies nobody"
    if fields.entity_id:
        incident = (
            Incident.objects.filter(service_id=integration.service_id, entity_id=fields.entity_id)
            .exclude(status=Incident.Status.RESOLVED).first()
        )
        if incident is not None:
            return f"joins incident #{incident.number} ({incident.get_status_display()})"
    if fields.declare is not None:
        return "declares a new incident"
    if integration.opens_incidents_for(fields.alert_type):
        return "opens a new incident"
    return "stored as an alert without an incident"


def preview(integration: Integration, body: bytes, *, source: str | None = None,
            query: dict | None = None, received_at=None, mapping_config=processing.SAVED,
            rule_items=None, arriving: bool = True) -> dict:
    """The result as a JSON-ready dict: `alert` (or `error` when the event would be
    refused or fail), `mapping` (matched blocks), `rules` (the audit the alert would get),
    `outcome`. A body `arriving` (pasted, not a received event) meets the generic
    webhook's door first, as a request would. Raises InvalidConfiguration for a malformed
    unsaved mapping or rules."""
    errors = {}
    if mapping_config is not processing.SAVED:
        if mapping_config is not None and integration.kind != Integration.Kind.GENERIC:
            errors["mapping"] = ["mapping applies to generic integrations only"]
        else:
            errors["mapping"] = mapping.validate_mapping(mapping_config)
    if rule_items is None:
        specs = rules.saved_rules(integration)
    else:
        specs, errors["rules"] = rules.unsaved_rules(rule_items)
    errors = {key: value for key, value in errors.items() if value}
    if errors:
        raise InvalidConfiguration(errors)

    source = source or integration.kind
    if arriving and source == Integration.Kind.GENERIC:
        config = integration.mapping if mapping_config is processing.SAVED else mapping_config
        try:
            generic.accept(body, mapped=config is not None)
        except generic.InvalidPayload as exc:
            return {"alert": None, "error": str(exc), "mapping": None, "rules": [],
                    "outcome": REFUSED}

    now = received_at or timezone.now()
    try:
        fields = processing.parse(
            integration, source, body, query or {}, now,
            mapping_config=mapping_config,
        )
        # A saved rule that cannot run (mapping.ConfigurationError) fails the event too.
        audit = rules.apply_rules(fields, specs, service_id=integration.service_id, now=now)
    except (generic.InvalidPayload, processing.ProcessingError) as exc:
        return {"alert": None, "error": str(exc), "mapping": None, "rules": [],
                "outcome": WOULD_FAIL}
    alert = {
        "message": fields.message,
        "summary": fields.summary,
        "alert_type": fields.alert_type,
        "urgency": fields.effective_urgency(),
        "entity_id": fields.entity_id or None,  # None: one is generated
        "suppressed": fields.suppressed,
        "priority": _name(Priority, fields.priority),
        "escalation_policy": _name(EscalationPolicy, fields.escalation_policy, names=False),
        "tags": [{"id": tag.pk, "name": tag.name} for tag in find_tags(fields.tags)],
        "payload": fields.payload,
        "warnings": list(fields.extra.get("warnings") or []),
    }
    return {"alert": alert, "error": None, "mapping": fields.extra.get("mapping"),
            "rules": audit, "outcome": _outcome(integration, fields)}


def preview_event(integration: Integration, event: InboundEvent, **overrides) -> dict:
    """Preview one of the integration's received events as it would be processed now. An
    accepted one is past the door (if it came in before a stricter one, it would fail); a
    rejected one meets the door again, as if it were sent now."""
    return preview(integration, bytes(event.body), source=event.source, query=event.query,
                   received_at=event.received_at,
                   arriving=event.status == InboundEvent.Status.REJECTED, **overrides)
