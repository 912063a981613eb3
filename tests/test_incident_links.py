"""One incident link (incidents.links) in every message that points at an incident."""

from django.urls import set_script_prefix

from incidents import lifecycle
from incidents.links import incident_url


def test_incident_link_is_the_incident_admin_page_on_the_public_address(service, settings):
    settings.TOCSIN_PUBLIC_URL = "https://tocsin.example.com"
    incident = lifecycle.open_incident(service=service, title="Disk full", entity_id="db-1")
    assert incident_url(incident.pk) == (
        f"https://tocsin.example.com/admin/incidents/incident/{incident.pk}/change/"
    )



def test_a_link_built_inside_a_request_under_a_path_prefix_names_the_prefix_once(settings):
    # Behind a proxy serving the portal under /tocsin/, TOCSIN_PUBLIC_URL holds the prefix
    # and a request carries it as its script prefix; a worker has none. Same link in both.
    settings.TOCSIN_PUBLIC_URL = "https://ops.example.com/tocsin"
    in_worker = incident_url(42)
    set_script_prefix("/tocsin/")
    try:
        in_request = incident_url(42)
    finally:
        set_script_prefix("/")
    assert in_worker == in_request == (
        "https://ops.example.com/tocsin/admin/incidents/incident/42/change/")
