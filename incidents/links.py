"""The incident link every message about an incident carries (deliveries, emails)."""

from django.urls import reverse

from tocsin.links import portal_url


def incident_url(incident_id: int) -> str:
    """The absolute address of the incident's page in the portal."""
    return portal_url(reverse("admin:incidents_incident_change", args=[incident_id]))
