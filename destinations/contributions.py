"""What the destinations app adds to the incidents app's API and admin pages.

incidents imports nothing from destinations (docs/architecture.md); it offers extension
points (incidents/extensions.py) that ``register()`` fills from DestinationsConfig.ready():
the ``destinations`` field of the REST services resource, the destinations inline of the
Service admin page, and the "Deliveries" section of the incident admin page.
"""

from django.contrib import admin
from django.contrib.admin.templatetags.admin_urls import admin_urlname
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from rest_framework import serializers

from destinations.models import Delivery, Destination, ServiceRoute
from incidents import extensions
from tocsin.adminkit import admin_url, badge


def service_destinations_field() -> serializers.Field:
    """A service's destinations as a list of ids, read and written (docs/api.md)."""
    return serializers.PrimaryKeyRelatedField(
        many=True, required=False, queryset=Destination.objects.all()
    )


class ServiceDestinationsInline(admin.TabularInline):
    """The destinations a service's incidents are sent to: its ServiceRoute rows
    (docs/roles.md says who may change them)."""

    model = ServiceRoute
    extra = 0
    verbose_name = "destination"
    verbose_name_plural = "destinations"

    # Which destinations a service sends to is part of the service, as it is in the API
    # (``services/``): whoever may change the service may add or remove its routes, whoever
    # may see it sees them. No permissions of the link rows, so the roles need no grants.
    def has_view_permission(self, request, obj=None):
        return (request.user.has_perm("incidents.view_service")
                or request.user.has_perm("incidents.change_service"))

    def has_add_permission(self, request, obj=None):
        return request.user.has_perm("incidents.change_service")

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("incidents.change_service")

    def has_delete_permission(self, request, obj=None):
        return request.user.has_perm("incidents.change_service")

    def get_queryset(self, request):
        # Each row's label names the service and the destination.
        return super().get_queryset(request).select_related("service", "destination")


def delivery_badges(deliveries) -> list:
    """Status badges for an incident's deliveries in sending order. A pending one with an
    earlier pending one for the same destination is waiting behind it, as the delivery log
    shows (docs/destinations.md); told apart here from the rows already loaded."""
    pending_destinations, badges = set(), []
    for sent in deliveries:
        if sent.status == Delivery.Status.PENDING and sent.destination_id in pending_destinations:
            badges.append(badge("waiting", "Waiting"))
        else:
            badges.append(badge(sent.status, sent.get_status_display()))
        if sent.status == Delivery.Status.PENDING:
            pending_destinations.add(sent.destination_id)
    return badges


@admin.display(description="Sent to destinations")
def deliveries_html(incident) -> str:
    # Named as the incident admin's method was, so the page keeps its field-deliveries_html
    # class.
    sent = incident.deliveries.select_related("destination").order_by("created_at", "id")
    if not sent:
        return "No destinations were told about this incident."
    rows = format_html_join(
        "", '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td>'
        "<td>{}</td><td>{}</td></tr>",
        (
            (admin_url(d), d.destination.name,
             d.get_event_display(), status, d.attempts, d.response_status or "",
             d.error[:120])
            for d, status in zip(sent, delivery_badges(sent), strict=True)
        ),
    )
    log = reverse(admin_urlname(Delivery._meta, "changelist"))
    return format_html(
        '<table class="tocsin-deliveries"><thead><tr><th>Destination</th><th>Event</th>'
        "<th>Status</th><th>Attempts</th><th>HTTP</th><th>Error</th></tr></thead>"
        '<tbody>{}</tbody></table><p><a href="{}?incident__id__exact={}">Delivery log for '
        "this incident</a></p>",
        rows, log, incident.pk,
    )


def register():
    extensions.add_service_api_field(
        "destinations", service_destinations_field, prefetch="destinations"
    )
    extensions.add_service_inline(ServiceDestinationsInline)
    extensions.add_incident_panel("Deliveries", deliveries_html)
