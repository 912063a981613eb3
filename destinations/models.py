from django.db import models


class Destination(models.Model):
    """Somewhere an incident's state changes are sent (a Slack channel, a PagerDuty service…)."""

    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        SLACK = "slack", "Slack"
        MATTERMOST = "mattermost", "Mattermost"
        WEBHOOK = "webhook", "Webhook"
        PAGERDUTY = "pagerduty", "PagerDuty"
        OPSGENIE = "opsgenie", "Opsgenie"
        CHATWORK = "chatwork", "ChatWork"
        HIPCHAT = "hipchat", "HipChat"
        ILERT = "ilert", "ilert"
        SERVICENOW = "servicenow", "ServiceNow"
        ZENDESK = "zendesk", "Zendesk"
        ZENDUTY = "zenduty", "Zenduty"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    config = models.JSONField(default=dict, blank=True)
    send_drills = models.BooleanField(
        default=False, help_text="Also send drill incidents to this destination."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.get_kind_display()})"
