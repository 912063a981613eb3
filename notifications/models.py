from django.db import models
from django.db.models import Q

from tocsin.outbox import OutboxItem


class NotificationType(models.TextChoices):
    INCIDENTS = "incidents", "Incidents"
    ESCALATIONS = "escalations", "Escalations"
    PLATFORM_ACTIONS = "platform_actions", "Platform Actions"
    ACCOUNT_NOTICES = "account_notices", "Account Notices"
    # Not a settings type: stakeholders are named on the alert itself.
    STAKEHOLDERS = "stakeholders", "Stakeholder messages"


SETTINGS_TYPES = [
    NotificationType.INCIDENTS, NotificationType.ESCALATIONS,
    NotificationType.PLATFORM_ACTIONS, NotificationType.ACCOUNT_NOTICES,
]


class NotificationSettings(models.Model):
    """Who the portal emails, and about what. Exactly one row (pk 1), made by a migration;
    a check constraint keeps it the only one whatever the admin or API allow."""

    default_recipients = models.JSONField(default=list, blank=True)
    incidents_override = models.BooleanField(
        "override global settings for Incidents", default=False)
    incidents_recipients = models.JSONField(default=list, blank=True)
    escalations_override = models.BooleanField(
        "override global settings for Escalations", default=False)
    escalations_recipients = models.JSONField(default=list, blank=True)
    platform_actions_override = models.BooleanField(
        "override global settings for Platform Actions", default=False)
    platform_actions_recipients = models.JSONField(default=list, blank=True)
    account_notices_override = models.BooleanField(
        "override global settings for Account Notices", default=False)
    account_notices_recipients = models.JSONField(default=list, blank=True)
    send_resolved = models.BooleanField(
        default=True, help_text="Email when an incident is resolved.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = verbose_name_plural = "notification settings"
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="notification_settings_singleton")
        ]

    def __str__(self):
        return "Notification settings"

    @classmethod
    def load(cls) -> "NotificationSettings":
        # The migration creates it; get_or_create covers a database flushed by tests.
        return cls.objects.get_or_create(pk=1)[0]

    def overrides(self) -> dict[str, list[str]]:
        """Per type, the override list, or [] when that type uses the default."""
        return {
            kind.value: list(getattr(self, f"{kind.value}_recipients"))
            if getattr(self, f"{kind.value}_override") else []
            for kind in SETTINGS_TYPES
        }

    def recipients_for(self, kind: str) -> list[str]:
        return self.overrides().get(kind) or list(self.default_recipients)


class Notification(OutboxItem):
    """One email the portal sends, recorded before it is sent, like a delivery. Sent by
    notifications.sending (the outbox: tocsin/outbox.py)."""

    type = models.CharField(max_length=20, choices=NotificationType.choices)
    event = models.CharField(max_length=64, help_text="What happened, e.g. incident.resolved")
    # One email per happening: whoever records the same happening twice (a retried task,
    # two workers) hits this constraint instead of sending a second mail.
    dedup_key = models.CharField(max_length=255, unique=True)
    subject = models.CharField(max_length=255)
    body_text = models.TextField()
    body_html = models.TextField(blank=True)
    recipients = models.JSONField(default=list)
    # Stakeholder entries that could not be turned into an address, with the reason.
    ignored = models.JSONField(default=list, blank=True)
    bcc = models.BooleanField(
        default=False, help_text="Recipients are hidden from each other (stakeholders).")
    incident = models.ForeignKey(
        "incidents.Incident", null=True, blank=True, on_delete=models.CASCADE,
        related_name="notifications",
    )

    class Meta(OutboxItem.Meta):
        permissions = [("resend_notification", "Can re-send notifications")]

    def __str__(self):
        return self.subject
