"""One incident link (incidents.links) in every message that points at an incident."""

from incidents import lifecycle
from incidents.links import incident_url


def test_incident_link_is_the_incident_admin_page_on_the_public_address(service, settings):
    settings.TOCSIN_PUBLIC_URL = "https://tocsin.example.com"
    incident = lifecycle.open_incident(service=service, title="Disk full", entity_id="db-1")
    assert incident_url(incident.pk) == (
        f"https://tocsin.example.com/admin/incidents/incident/{incident.pk}/change/"
    )

