import secrets
import string

from django.conf import settings
from django.db import models
from django.db.models import Q

UNIQUE_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_unique_id() -> str:
    """A short random id that is safe to show in URLs and chat (about 52 bits)."""
    return "".join(secrets.choice(UNIQUE_ID_ALPHABET) for _ in range(10))


class Team(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="teams")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class EscalationPolicy(models.Model):
    """Who is paged about an incident, step by step, until someone acknowledges. Its steps
    and their targets (users, schedules, teams) belong to the on-call app
    (oncall.EscalationStep; docs/on-call.md#escalation-policies)."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="escalation_policies")
    # How many times the whole list of steps runs again after the last one.
    repeat = models.PositiveSmallIntegerField(
        default=0, help_text="How many times the steps run again after the last one (0-9).")
    page_drills = models.BooleanField(
        default=False, help_text="Page people for drill incidents too.")

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "escalation policies"
        constraints = [
            models.CheckConstraint(condition=Q(repeat__lte=9),
                                   name="escalation_policy_repeat_at_most_9"),
        ]

    def __str__(self):
        return self.name


class Priority(models.Model):
    name = models.CharField(max_length=50, unique=True)
    description = models.TextField(blank=True)
    color = models.CharField(max_length=20, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "priorities"

    def __str__(self):
        return self.name


class SLA(models.Model):
    name = models.CharField(max_length=200, unique=True)
    acknowledge_within_minutes = models.PositiveIntegerField(null=True, blank=True)
    resolve_within_minutes = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "SLA"
        verbose_name_plural = "SLAs"

    def __str__(self):
        return self.name


class Tag(models.Model):
    name = models.CharField(max_length=100, unique=True)
    color = models.CharField(max_length=20, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Service(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="services")
    escalation_policy = models.ForeignKey(
        EscalationPolicy, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="service_name_unique_in_team")
        ]

    def __str__(self):
        return self.name


class IncidentCounter(models.Model):
    """One row holding the last incident number handed out.

    Incrementing it inside the transaction that inserts the incident keeps numbers
    sequential without gaps: a transaction that loses a race rolls its increment back.
    """

    last_number = models.PositiveBigIntegerField(default=0)

    def __str__(self):
        return f"last incident number {self.last_number}"


class Incident(models.Model):
    class Status(models.TextChoices):
        TRIGGERED = "triggered", "Triggered"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    class Urgency(models.TextChoices):
        HIGH = "high", "High"
        LOW = "low", "Low"

    number = models.PositiveBigIntegerField(unique=True, editable=False)
    unique_id = models.CharField(max_length=16, unique=True, default=new_unique_id, editable=False)
    title = models.CharField(max_length=500)
    summary = models.TextField(blank=True)
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="incidents")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.TRIGGERED)
    urgency = models.CharField(max_length=10, choices=Urgency.choices, default=Urgency.HIGH)
    severity = models.CharField(max_length=50, blank=True)
    priority = models.ForeignKey(Priority, null=True, blank=True, on_delete=models.SET_NULL)
    sla = models.ForeignKey(
        SLA, null=True, blank=True, on_delete=models.SET_NULL, verbose_name="SLA"
    )
    escalation_policy = models.ForeignKey(
        EscalationPolicy, null=True, blank=True, on_delete=models.SET_NULL
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="incidents")
    labels = models.JSONField(default=list, blank=True)
    drill = models.BooleanField(default=False)
    room_prefix = models.CharField(max_length=100, blank=True)
    entity_id = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    # Who acknowledged it; empty when an alert or an automation without a user did.
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Who is paged about it now: the people the latest escalation step paged, and anyone
    # paged by hand since (docs/escalation.md#assignees).
    assignees = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True,
                                       related_name="assigned_incidents")

    class Meta:
        ordering = ["-number"]
        permissions = [
            ("acknowledge_incident", "Can acknowledge incidents"),
            ("resolve_incident", "Can resolve incidents"),
            ("comment_incident", "Can add notes to incidents"),
        ]
        constraints = [
            # Grouping relies on this: the database, not process memory, decides which of
            # two concurrent alerts opens the incident for an entity.
            models.UniqueConstraint(
                fields=["service", "entity_id"],
                condition=~Q(status="resolved"),
                name="one_open_incident_per_entity",
            )
        ]
        indexes = [models.Index(fields=["status", "-created_at"])]

    def __str__(self):
        return f"#{self.number} {self.title}"

    @property
    def is_open(self) -> bool:
        return self.status != self.Status.RESOLVED


class TimelineEntry(models.Model):
    """One line of an incident's timeline: an alert, a state change, a delivery or a note."""

    class Kind(models.TextChoices):
        ALERT = "alert", "Alert"
        TRIGGERED = "triggered", "Triggered"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"
        NOTE = "note", "Note"
        DELIVERY = "delivery", "Delivery"
        ESCALATION = "escalation", "Escalation"
        # A person paged, and each message of the page sent or failed (docs/on-call.md).
        PAGE = "page", "Page"

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="timeline")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    message = models.TextField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "timeline entries"

    def __str__(self):
        return f"{self.get_kind_display()}: {self.message[:60]}"
