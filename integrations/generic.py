"""The generic JSON webhook's payload (docs/generic-webhook.md): validation and normalisation.

The view validates synchronously so the sender gets a 400 naming every problem; the
processing task parses the stored body again with the same function.
"""

from integrations.alert_fields import AlertFields
from integrations.models import AlertType
from tocsin import strictjson

ALERT_TYPES = set(AlertType.values)

# Deeper JSON is refused (docs/generic-webhook.md).
MAX_DEPTH = strictjson.MAX_DEPTH


class InvalidPayload(Exception):
    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _is_text(value) -> bool:
    return isinstance(value, str)


def _check_urls(urls, errors):
    if not isinstance(urls, list):
        errors["urls"] = "must be a list of {link_url, link_text} objects"
        return
    for index, item in enumerate(urls):
        if not isinstance(item, dict) or not _is_text(item.get("link_url")):
            errors["urls"] = f"item {index} must be an object with a link_url string"
            return
        if "link_text" in item and not _is_text(item["link_text"]):
            errors["urls"] = f"item {index}: link_text must be a string"
            return


def _check_object_of_lists(name, value, keys, errors):
    if not isinstance(value, dict):
        errors[name] = f"must be an object with {', '.join(keys)}"
        return
    for key in keys:
        if key in value and not isinstance(value[key], list):
            errors[name] = f"{key} must be a list"
            return


def load_json(body: bytes):
    """Strict JSON (tocsin.strictjson): no NaN or Infinity, no number out of float range,
    bounded nesting, only text that can be stored. Raises InvalidPayload naming the path,
    or ValueError for a body that is not JSON at all."""
    try:
        return strictjson.loads(body)
    except strictjson.JSONProblem as exc:
        raise InvalidPayload({exc.path: exc.problem}) from None


def parse_body(body: bytes) -> dict:
    try:
        data = load_json(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidPayload({"body": f"not valid JSON ({exc})"}) from None
    if not isinstance(data, dict):
        raise InvalidPayload({"body": f"must be a JSON object, not {type(data).__name__}"})
    return data


def accept(body: bytes, *, mapped: bool) -> dict:
    """What the webhook checks before it answers: the body is strict JSON, an object, and,
    without a mapping, a valid alert. Raises InvalidPayload: the answer is a 400 and the
    event is stored as rejected. With a mapping the body is the sender's own JSON: the
    worker maps it, and an empty mapped message fails the stored event (reprocessable once
    the mapping is fixed) rather than the request. The preview asks the same question."""
    document = parse_body(body)
    if not mapped:
        validate(document)
    return document


def validate(data: dict) -> AlertFields:
    """Check every field and return them all at once, or raise with every problem found."""
    errors: dict[str, str] = {}
    message = data.get("message")
    if message is None or (_is_text(message) and not message.strip()):
        errors["message"] = "is required"
    elif not _is_text(message):
        errors["message"] = "must be a string"

    summary = data.get("summary", "")
    if summary is not None and not _is_text(summary):
        errors["summary"] = "must be a string"

    alert_type = data.get("alert_type", AlertType.INFO)
    if not _is_text(alert_type) or alert_type.lower() not in ALERT_TYPES:
        errors["alert_type"] = f"must be one of {', '.join(sorted(ALERT_TYPES))}"

    suppressed = data.get("suppressed", False)
    if not isinstance(suppressed, bool):
        errors["suppressed"] = "must be true or false"

    entity_id = data.get("entity_id")
    if entity_id is not None and (
        isinstance(entity_id, bool) or not isinstance(entity_id, str | int | float)
    ):
        errors["entity_id"] = "must be a string or a number"

    payload = data.get("payload", {})
    if payload is not None and not isinstance(payload, dict):
        errors["payload"] = "must be an object"

    if "urls" in data and data["urls"] is not None:
        _check_urls(data["urls"], errors)

    tags = data.get("tags", [])
    if tags is not None and not isinstance(tags, list):
        errors["tags"] = "must be a list of tag ids"

    if data.get("stakeholders") is not None:
        _check_object_of_lists(
            "stakeholders", data["stakeholders"], ["users", "teams", "emails"], errors
        )
    comms = data.get("stakeholders_comms")
    if comms is not None and not isinstance(comms, dict):
        errors["stakeholders_comms"] = "must be an object with subject, body, timezone"

    if errors:
        raise InvalidPayload(errors)

    if isinstance(entity_id, float) and entity_id.is_integer():
        entity_id = int(entity_id)
    return AlertFields(
        message=message.strip()[:500],
        summary=summary or "",
        alert_type=alert_type.lower(),
        suppressed=suppressed,
        entity_id="" if entity_id is None else str(entity_id)[:255],
        payload=payload or {},
        urls=data.get("urls") or [],
        sla=data.get("sla"),
        escalation_policy=data.get("escalation_policy"),
        priority=data.get("priority"),
        tags=tags or [],
        stakeholders=data.get("stakeholders") or {},
        stakeholders_comms=comms or {},
    )
