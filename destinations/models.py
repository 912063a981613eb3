import uuid

from django.db import models
from django.db.models import Exists, OuterRef, Q

from tocsin.outbox import OutboxItem


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
    # Validated against the kind's fields (destinations.kinds); secrets live here too and
    # are stripped from every form, API response and log line.
    config = models.JSONField(default=dict, blank=True)
    send_drills = models.BooleanField(
        default=False, help_text="Also send drill incidents to this destination."
    )
    failing = models.BooleanField(
        default=False, editable=False,
        help_text="Set after several deliveries in a row failed; cleared by the next success.",
    )
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    # Routing lives here, not on Service: destinations depend on incidents, never the
    # reverse (docs/architecture.md). service.destinations still reads the same.
    services = models.ManyToManyField(
        "incidents.Service", blank=True, related_name="destinations", through="ServiceRoute"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.get_kind_display()})"


class ServiceRoute(models.Model):
    """One service whose incidents are sent to one destination: a row of the Service admin
    page's Destinations list, named so that the page can say which."""

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE)
    service = models.ForeignKey("incidents.Service", on_delete=models.CASCADE)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["destination", "service"],
                                    name="one_route_per_destination_service"),
        ]

    def __str__(self):
        return f"{self.service.name} → {self.destination.name}"


class Delivery(OutboxItem):
    """One lifecycle event of one incident sent to one destination, with every attempt's
    outcome. Created before the first attempt, in the transaction that changed the
    incident, so a crash after the change cannot lose the notification. Sent by
    destinations.sending (the outbox: tocsin/outbox.py)."""

    class Event(models.TextChoices):
        TRIGGERED = "triggered", "Triggered"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"
        TEST = "test", "Test"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="deliveries"
    )
    incident = models.ForeignKey(
        "incidents.Incident", null=True, blank=True, on_delete=models.CASCADE,
        related_name="deliveries",
    )
    event = models.CharField(max_length=20, choices=Event.choices)
    actor = models.CharField(max_length=150, blank=True)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    remote_id = models.CharField(max_length=255, blank=True)

    class Meta(OutboxItem.Meta):
        verbose_name_plural = "deliveries"
        permissions = [("resend_delivery", "Can re-send deliveries")]
        constraints = [
            # The same lifecycle event is never queued twice for a destination, however
            # many workers or retries race to create it.
            models.UniqueConstraint(
                fields=["destination", "incident", "event"],
                condition=Q(incident__isnull=False),
                name="one_delivery_per_destination_incident_event",
            )
        ]

    def __str__(self):
        return f"{self.get_event_display()} → {self.destination.name}"

    @classmethod
    def behind_earlier_pending(cls) -> Exists:
        """Filter expression: true for a delivery that must wait because an earlier delivery
        of the same destination and incident is still pending (queued, in flight or waiting
        to retry). A resolve that overtook a trigger being retried would leave the incident
        open on the other side for good, so one pair's deliveries go out one at a time, in
        the order they were recorded. Ids give that order: an incident's state changes are
        serialised by its row, so the events' rows are inserted one after the other. Test
        deliveries have no incident and never wait (NULL matches nothing).

        Served by the index of the unique (destination, incident, event) constraint: a
        pair has at most three rows."""
        return Exists(cls.objects.filter(
            destination_id=OuterRef("destination_id"), incident_id=OuterRef("incident_id"),
            incident__isnull=False, pk__lt=OuterRef("pk"), status=cls.Status.PENDING,
        ))

    def same_pair(self) -> models.QuerySet:
        """Every delivery of this delivery's destination and incident, in sending order."""
        return Delivery.objects.filter(
            destination_id=self.destination_id, incident_id=self.incident_id,
            incident__isnull=False,
        ).order_by("pk")


class RemoteRecord(models.Model):
    """The record a ticketing kind (ServiceNow, Zendesk) keeps for one incident at one
    destination. Saved before the create is sent, so a retry after an unknown outcome knows
    to look the record up first; the remote id is kept once known, so later events update
    that record and nothing creates a second one. See destinations/kinds/records.py."""

    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="remote_records"
    )
    incident = models.ForeignKey(
        "incidents.Incident", null=True, blank=True, on_delete=models.CASCADE,
        related_name="+",
    )
    # The correlation id sent with the create (ServiceNow correlation_id, Zendesk
    # external_id), which the remote side can be searched by.
    key = models.CharField(max_length=200)
    remote_id = models.CharField(max_length=255, blank=True)
    # A send is creating the record until this time; a crashed one's claim simply expires.
    creating_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["destination", "key"],
                                    name="one_remote_record_per_destination_key"),
        ]

    def __str__(self):
        return f"{self.key} → {self.remote_id or '(unknown)'}"
