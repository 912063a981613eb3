import hashlib
import re
import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from incidents.models import Incident, Service
from integrations.signals import integration_changed
from tocsin.links import portal_url


def new_integration_key() -> str:
    """An unguessable URL-safe key: 32 random bytes, 256 bits."""
    return secrets.token_urlsafe(32)


def new_email_local_part() -> str:
    # Lower-case hex survives mail systems that fold the case of local parts.
    return "alert-" + secrets.token_hex(16)


def default_rate_limit() -> int:
    return settings.TOCSIN_DEFAULT_RATE_LIMIT_PER_MINUTE


def default_create_incidents_for() -> list[str]:
    return ["critical"]


class AlertType(models.TextChoices):
    CRITICAL = "critical", "Critical"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"
    ERROR = "error", "Error"
    WARNING = "warning", "Warning"
    INFO = "info", "Info"


# The alert types that may open an incident, depending on create_incidents_for.
INCIDENT_OPENING_TYPES = [AlertType.CRITICAL, AlertType.ERROR, AlertType.WARNING]


class Integration(models.Model):
    class Kind(models.TextChoices):
        GENERIC = "generic", "Generic JSON webhook"
        INCOMING_WEBHOOK = "incoming_webhook", "Incoming webhook (bearer token)"
        EMAIL = "email", "Email"

    class Status(models.TextChoices):
        ENABLED = "enabled", "Enabled"
        DISABLED = "disabled", "Disabled"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.GENERIC)
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="integrations")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ENABLED)
    description = models.TextField(blank=True)
    integration_url = models.URLField(
        blank=True, help_text="Home page of the sending tool (for responders' reference)."
    )
    tags = models.JSONField(default=list, blank=True)
    create_incidents_for = models.JSONField(
        default=default_create_incidents_for,
        blank=True,
        help_text="Alert types that open incidents: any of critical, error, warning.",
    )
    default_severity = models.CharField(
        max_length=50, default="major",
        help_text="Severity of incidents declared through this integration without one.",
    )
    rate_limit_per_minute = models.PositiveIntegerField(
        default=default_rate_limit,
        help_text="Requests accepted per minute before answering 429; 0 means no limit.",
    )
    mapping = models.JSONField(
        null=True, blank=True, default=None,
        help_text="Custom payload mapping (generic integrations); empty means off. "
        "See docs/mapping-and-rules.md.",
    )
    key = models.CharField(max_length=64, unique=True, default=new_integration_key, editable=False)
    email_local_part = models.CharField(max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["email_local_part"],
                condition=~models.Q(email_local_part=""),
                name="email_address_unique",
            )
        ]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        if self.kind == self.Kind.EMAIL and not self.email_local_part:
            self.email_local_part = new_email_local_part()
        adding = self._state.adding
        super().save(*args, **kwargs)
        previous, self.loaded_status = getattr(self, "loaded_status", None), self.status
        if adding:
            integration_changed.send(sender=Integration, integration=self, change="created",
                                     detail="")
        elif previous is not None and previous != self.status:
            integration_changed.send(sender=Integration, integration=self, change=self.status,
                                     detail="")

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        # Remember the stored status, so save() can tell an enable/disable from other edits.
        instance.loaded_status = instance.__dict__.get("status")
        return instance

    def opens_incidents_for(self, alert_type: str) -> bool:
        """Whether an alert of this type, with no incident open for its entity, opens one."""
        return (alert_type in INCIDENT_OPENING_TYPES
                and alert_type in (self.create_incidents_for or []))

    def regenerate_email_address(self) -> None:
        """Give an email integration a new address; mail to the old one is rejected."""
        if self.kind != self.Kind.EMAIL:
            raise ValueError("Only email integrations have an address.")
        self.email_local_part = new_email_local_part()
        self.save(update_fields=["email_local_part"])

    @property
    def is_enabled(self) -> bool:
        return self.status == self.Status.ENABLED

    @property
    def webhook_url(self) -> str | None:
        if self.kind != self.Kind.GENERIC:
            return None
        return portal_url(reverse("generic-event", args=[self.key]))

    @property
    def email_address(self) -> str | None:
        if self.kind != self.Kind.EMAIL or not self.email_local_part:
            return None
        return f"{self.email_local_part}@{settings.TOCSIN_INBOUND_EMAIL_DOMAIN}"

    @property
    def has_endpoint(self) -> bool:
        """Whether senders can reach it yet: status can only be edited once they can."""
        if self.pk is None:
            return False
        if self.kind == self.Kind.INCOMING_WEBHOOK:
            return self.tokens.filter(revoked_at__isnull=True).exists()
        return True


def hash_token(plaintext: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(plaintext.encode()).hexdigest()


class IntegrationToken(models.Model):
    """A bearer token of an incoming-webhook integration. Only its hash is stored."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=12, editable=False)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, integration: Integration, name: str) -> tuple["IntegrationToken", str]:
        """Create a token; the plaintext is returned once and never stored."""
        plaintext = "tcs_" + secrets.token_urlsafe(32)
        token = cls.objects.create(
            integration=integration, name=name,
            prefix=plaintext[:10], token_hash=hash_token(plaintext),
        )
        return token, plaintext

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def mark_used(self) -> None:
        # At most one write a minute per token, to keep busy senders off a hot row; the
        # loaded value spares the query entirely on most requests.
        now = timezone.now()
        if self.last_used_at is not None and self.last_used_at >= now - timedelta(minutes=1):
            return
        IntegrationToken.objects.filter(pk=self.pk).filter(
            models.Q(last_used_at__isnull=True)
            | models.Q(last_used_at__lt=now - timedelta(minutes=1))
        ).update(last_used_at=now)

    def revoke(self) -> bool:
        """Revoke once; the first revocation time is kept. Returns False if it already was."""
        revoked = IntegrationToken.objects.filter(pk=self.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        self.refresh_from_db(fields=["revoked_at"])
        if revoked:
            integration_changed.send(
                sender=Integration, integration=self.integration, change="token_revoked",
                detail=f"Token {self.name!r} ({self.prefix}…) was revoked.",
            )
        return bool(revoked)


# What people who may not see integration addresses see of a received mail's body.
HIDDEN_MAIL = "[hidden: raw mail of an email integration]"


class InboundEvent(models.Model):
    """Every request that reaches an ingest endpoint, stored before it is processed."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        REJECTED = "rejected", "Rejected"

    trace_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    integration = models.ForeignKey(
        Integration, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    source = models.CharField(max_length=50, help_text="Which endpoint received it.")
    body = models.BinaryField()
    headers = models.JSONField(default=dict, blank=True)
    query = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    enqueued_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was last handed to the task queue."
    )
    attempt_started_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When the attempt in progress started; empty once a retryable attempt ended.",
    )
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["status", "received_at"])]

    def __str__(self):
        return str(self.trace_id)

    @property
    def body_text(self) -> str:
        return bytes(self.body).decode("utf-8", errors="replace")

    def hide_endpoint(self, text: str) -> str:
        """The text with its integration's key and email address blanked, for people who
        may not see them (tocsin.permissions.sees_integration_endpoints).

        Matched case-insensitively: mail systems may fold the case of an address
        (`ALERT-3F9C…@ALERTS.EXAMPLE.COM` reaches the integration too)."""
        integration = self.integration
        if integration is None:
            return text
        patterns = [re.escape(s) for s in (integration.key, integration.email_local_part) if s]
        if not patterns:
            return text
        return re.sub("|".join(patterns), "[hidden]", text, flags=re.IGNORECASE)

    def hidden_body(self) -> str:
        """The body for people who may not see endpoints. A raw mail may name its address
        encoded (quoted-printable with soft line breaks, base64, RFC 2047 words), which no
        blanking of the text finds, so it is not shown at all; the alert made from it
        shows what was read. Other bodies are shown with the endpoint blanked."""
        if self.source == "email":  # integrations.inbound_mail.SOURCE
            return HIDDEN_MAIL
        return self.hide_endpoint(self.body_text)


class Alert(models.Model):
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="alerts")
    inbound_event = models.OneToOneField(
        InboundEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="alert"
    )
    incident = models.ForeignKey(
        Incident, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    alert_type = models.CharField(max_length=20, choices=AlertType.choices, default=AlertType.INFO)
    message = models.CharField(max_length=500)
    summary = models.TextField(blank=True)
    entity_id = models.CharField(max_length=255)
    suppressed = models.BooleanField(default=False)
    opened_incident = models.BooleanField(default=False)
    payload = models.JSONField(default=dict, blank=True)
    urls = models.JSONField(default=list, blank=True)
    extra = models.JSONField(
        default=dict, blank=True,
        help_text="Other fields of the alert (stakeholders, comms, requested ids, warnings).",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.get_alert_type_display()}: {self.message[:60]}"

    @property
    def warnings(self) -> list[str]:
        """What the parser had to guess (an email alert's missing event_time, …)."""
        return list(self.extra.get("warnings") or [])


class AlertRule(models.Model):
    """An alert rule (docs/mapping-and-rules.md): conditions on an alert (after mapping)
    and what to do with it. The shapes of `conditions` and `actions` are checked by
    integrations.rules."""

    class Action(models.TextChoices):
        SUPPRESS = "suppress", "Suppress"
        SET_ALERT_TYPE = "set_alert_type", "Set alert type"
        SET_URGENCY = "set_urgency", "Set urgency"
        SET_MESSAGE = "set_message", "Set message"
        SET_SUMMARY = "set_summary", "Set summary"
        SET_ENTITY_ID = "set_entity_id", "Set entity id"
        ADD_NOTE = "add_note", "Add a note"
        ADD_TAGS = "add_tags", "Add tags"
        SET_PRIORITY = "set_priority", "Set priority"
        ROUTE_ESCALATION_POLICY = "route_escalation_policy", "Route to an escalation policy"

    class Field(models.TextChoices):
        """What a `{"field": …}` condition looks at (a `{"path": …}` one looks into the
        alert's payload)."""

        ALERT_TYPE = "alert_type", "Alert type"
        URGENCY = "urgency", "Urgency"
        MESSAGE = "message", "Message"
        SUMMARY = "summary", "Summary"
        ENTITY_ID = "entity_id", "Entity id"
        TIME_OF_DAY = "time_of_day", "Time of day"
        DAY_OF_WEEK = "day_of_week", "Day of week"
        SECONDS_SINCE_LAST_INCIDENT = "seconds_since_last_incident", "Seconds since last incident"
        PAYLOAD_KEYS = "payload_keys", "Payload keys"

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="rules")
    name = models.CharField(max_length=200)
    position = models.PositiveIntegerField(
        default=0, help_text="Rules are listed, audited and add notes in this order."
    )
    enabled = models.BooleanField(default=True)
    conditions = models.JSONField(
        default=list, blank=True, help_text="All must hold; an empty list matches every alert."
    )
    actions = models.JSONField(default=list)
    # Where rules conflict the most recently created one wins (docs/mapping-and-rules.md),
    # so this is part of the behaviour, not only a record; a default rather than
    # auto_now_add lets an import keep the original order.
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self):
        return self.name


class RateLimitCounter(models.Model):
    """Hits per key in one fixed time window, shared by every web process via the database.

    Used when there is no Redis; Django's database cache cannot increment atomically.
    """

    scope = models.CharField(max_length=100)
    slot = models.BigIntegerField(help_text="Start of the window, in periods since the epoch.")
    hits = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "slot"], name="ratelimit_scope_slot")
        ]

    def __str__(self):
        return f"{self.scope}@{self.slot}: {self.hits}"


class IdempotencyKey(models.Model):
    """The answer the first request with an Idempotency-Key (or the first mail with a
    Message-ID) got, so a repeat within the window is answered alike and stores nothing.

    The unique constraint decides between simultaneous repeats: the loser's transaction
    rolls back and it answers with the winner's row. Rows past the window are deleted by
    the prune job, or by the next request that reuses the key.
    """

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    event = models.ForeignKey(
        InboundEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["integration", "key"], name="idempotency_key_unique")
        ]

    def __str__(self):
        return f"{self.key} ({self.status_code})"
