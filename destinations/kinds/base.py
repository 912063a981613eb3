"""What every destination kind shares: its config schema, the message it is given, and the
``Kind`` base class each kind derives from.

A kind is one small class: ``FIELDS`` (its config keys), ``build(message)`` (the remote
API's payload), and ``send(message) -> Result``, which by default POSTs that payload as
JSON to ``url(message)`` through ``tocsin.transport.http`` and maps the answer with
``result(response)``. A kind overrides only what differs from that. Anything that goes wrong
is raised as ``TransportError`` saying whether it is permanent.
"""

import re
from dataclasses import dataclass, field
from datetime import datetime

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email

from tocsin.transport import Result, http

TEXT, URL, SECRET, EMAILS, CHOICE, BOOL = "text", "url", "secret", "emails", "choice", "bool"
# A URL that is itself a credential (a Slack incoming webhook, a Zenduty integration URL):
# validated as a URL, write-only like a secret.
SECRET_URL = "secret_url"
# Config values end up in HTTP headers and URLs; a line break there would be refused by the
# HTTP client with an error quoting the value, secret or not.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Field:
    name: str
    type: str = TEXT
    required: bool = True
    default: object = None
    help: str = ""
    choices: tuple = ()

    @property
    def secret(self) -> bool:
        return self.type in (SECRET, SECRET_URL)


@dataclass
class Message:
    """One lifecycle event of one incident, as every kind sees it."""

    event: str  # triggered, acknowledged, resolved or test
    config: dict
    delivery_id: str
    incident_id: int | None
    number: int | None
    unique_id: str
    title: str
    summary: str
    status: str
    urgency: str
    severity: str
    priority: str
    service: str
    team: str
    entity_id: str
    drill: bool
    url: str
    created_at: datetime | None
    occurred_at: datetime
    actor: str = ""
    labels: list = field(default_factory=list)
    tags: list = field(default_factory=list)

    @property
    def is_test(self) -> bool:
        return self.event == "test"

    @property
    def state_label(self) -> str:
        return {"triggered": "Triggered", "acknowledged": "Acknowledged",
                "resolved": "Resolved", "test": "Test"}[self.event]

    @property
    def headline(self) -> str:
        """One line for chat kinds: '[Resolved] #12 Disk full on db-1 (Checkout)'."""
        return self.headline_escaped(str)

    def headline_escaped(self, escape) -> str:
        """The headline with the parts senders control (title, service) passed through a
        kind's ``escape``, and Tocsin's own markers left as they are."""
        number = f"#{self.number} " if self.number else ""
        drill = " [DRILL]" if self.drill else ""
        return f"[{self.state_label}]{drill} {number}{escape(self.title)} ({escape(self.service)})"

    @property
    def link_text(self) -> str:
        return f"Tocsin incident #{self.number}" if self.number else "Tocsin test notification"

    @property
    def dedup_key(self) -> str:
        """Stable per incident, so the remote side ties trigger, ack and resolve together."""
        return f"tocsin-{self.unique_id}"

    def as_dict(self) -> dict:
        """The incident as the webhook and Zenduty kinds send it."""
        return {
            "id": self.incident_id, "number": self.number, "unique_id": self.unique_id,
            "title": self.title, "summary": self.summary, "status": self.status,
            "urgency": self.urgency, "severity": self.severity, "priority": self.priority,
            "service": self.service, "team": self.team, "entity_id": self.entity_id,
            "drill": self.drill, "labels": self.labels, "tags": self.tags, "url": self.url,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


class Kind:
    """One destination kind: how a message becomes a request to the remote API, and how the
    answer becomes a Result."""

    # The config keys a destination of this kind has (forms, the API and the admin use it).
    FIELDS: list[Field] = []

    def remote_key(self, message: Message) -> str:
        """The key the remote side ties trigger, acknowledge and resolve of one incident
        together by (PagerDuty's dedup key, an Opsgenie alias…). A test gets a key of its
        own, per delivery, so it can never acknowledge or resolve a real incident."""
        return f"tocsin-test-{message.delivery_id}" if message.is_test else message.dedup_key

    def build(self, message: Message):
        """The payload the remote API is sent for this message."""
        raise NotImplementedError

    def url(self, message: Message) -> str:
        """Where the payload is posted."""
        raise NotImplementedError

    def headers(self, message: Message) -> dict:
        """Extra request headers, credentials above all."""
        return {}

    def send(self, message: Message) -> Result:
        response = http.request("POST", self.url(message), json_body=self.build(message),
                                headers=self.headers(message))
        return self.result(response)

    def result(self, response: http.Response) -> Result:
        """What is recorded of a successful answer; kinds whose API returns an id for what
        was sent keep it as ``remote_id``."""
        return Result(response.status, response.text)


PLACEHOLDER = re.compile(r"\{(\w+)\}")


def render_template(template: str, values: dict) -> str:
    """Fill ``{name}`` placeholders; unknown ones stay as written. Deliberately not
    str.format, which would let a template reach object attributes."""
    return PLACEHOLDER.sub(
        lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), template
    )


def clean_config(fields: list[Field], config: dict, *, current: dict | None = None) -> dict:
    """Validate ``config`` against ``fields`` and return it cleaned.

    A secret that is absent or empty keeps its ``current`` value, because forms and the API
    never show secrets back and so cannot send them again on every update.
    """
    if not isinstance(config, dict):
        raise ValidationError({"config": "Must be a JSON object."})
    current = current or {}
    known = {f.name for f in fields}
    errors = {}
    unknown = sorted(set(config) - known)
    if unknown:
        errors["config"] = (
            f"Unknown keys: {', '.join(unknown)}. Allowed: {', '.join(sorted(known))}."
        )
    cleaned = {}
    for spec in fields:
        value = config.get(spec.name)
        if spec.secret and value in (None, "") and current.get(spec.name):
            cleaned[spec.name] = current[spec.name]
            continue
        if value in (None, "", []):
            if spec.required:
                errors[spec.name] = "This field is required."
            elif spec.default is not None:
                cleaned[spec.name] = spec.default
            continue
        try:
            cleaned[spec.name] = clean_value(spec, value)
        except ValidationError as exc:
            errors[spec.name] = " ".join(exc.messages)
    if errors:
        raise ValidationError(errors)
    return cleaned


def clean_value(spec: Field, value):
    if spec.type == BOOL:
        if not isinstance(value, bool):
            raise ValidationError("Must be true or false.")
        return value
    if spec.type == EMAILS:
        items = value if isinstance(value, list) else re.split(r"[,\s]+", str(value))
        items = [str(item).strip() for item in items if str(item).strip()]
        for item in items:
            validate_email(item)
        if not items:
            raise ValidationError("Give at least one address.")
        return items
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValidationError("Must be a string.")
    value = str(value).strip()
    if CONTROL_CHARACTERS.search(value):
        raise ValidationError("Must be one line without control characters.")
    if spec.type in (URL, SECRET_URL):
        URLValidator(schemes=["http", "https"])(value)
        # Base URLs have paths appended: "https://x.service-now.com/" would give "//api/…".
        return value.rstrip("/") if spec.name.endswith(("api_url", "instance_url")) else value
    if spec.type == CHOICE and value not in spec.choices:
        raise ValidationError(f"Must be one of: {', '.join(spec.choices)}.")
    return value


def public_config(fields: list[Field], config: dict) -> dict:
    """The config without its secrets, for forms, API responses and logs."""
    secret = {f.name for f in fields if f.secret}
    return {key: value for key, value in config.items() if key not in secret}
