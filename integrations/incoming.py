"""The bearer-token incoming webhook (docs/incoming-webhook.md): query parameters that declare an
incident, each either literal or `json(path)` into the request body."""

import re
import uuid

from django.conf import settings

from integrations.alert_fields import AlertFields
from integrations.generic import InvalidPayload, load_json
from integrations.mapping import MISSING, as_text, lookup
from integrations.models import AlertType, Integration

JSON_REF = re.compile(r"^json\((?P<path>[^()]*)\)$")
TRUE_WORDS = {"1", "true", "yes", "on"}


def body_document(body: bytes):
    """The parsed body, or None when it is too large to parse or not JSON. JSON that could
    not be stored as it is (NaN, a lone surrogate, a NUL, nesting past the limit) counts
    as not JSON too: the incident is declared from the parameters' defaults."""
    if len(body) > settings.TOCSIN_INCOMING_WEBHOOK_PARSE_BYTES:
        return None
    try:
        return load_json(body)
    except (UnicodeDecodeError, ValueError, InvalidPayload):
        return None


def resolve(raw: str | None, document):
    """A parameter's value: the literal, the value at json(path), or MISSING."""
    if raw is None:
        return MISSING
    match = JSON_REF.match(raw.strip())
    if not match:
        return raw
    if document is None:
        return MISSING
    value = lookup(document, match.group("path").strip())
    return MISSING if value is None else value


def as_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    return as_text(value).lower() in TRUE_WORDS


def as_labels(value) -> list[str]:
    if value is MISSING:
        return []
    items = value if isinstance(value, list) else as_text(value).split(",")
    return [label for label in (as_text(item) for item in items) if label]


def declaration(integration: Integration, query: dict, body: bytes) -> AlertFields:
    """Turn the stored query and body into the fields of a new incident. Never fails:
    anything that cannot be found falls back to a default, and the incident is declared."""
    document = body_document(body)
    title = as_text(resolve(query.get("title"), document))
    severity = as_text(resolve(query.get("severity"), document))
    fields = AlertFields(
        message=(title or f"Incident declared via {integration.name}")[:500],
        alert_type=AlertType.CRITICAL,
        # Every call declares its own incident, as Grafana's incident.create does.
        entity_id=f"declared-{uuid.uuid4().hex}",
        payload=document if isinstance(document, dict) else {},
    )
    fields.declare = {
        "severity": (severity or integration.default_severity)[:50],
        "labels": as_labels(resolve(query.get("labels"), document)),
        "drill": as_bool(resolve(query.get("drill"), document)),
        "room_prefix": as_text(resolve(query.get("roomprefix"), document))[:100],
    }
    return fields
