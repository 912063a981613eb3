"""incidents stands alone (docs/architecture.md): it imports no app built on it, its
migrations need none of theirs, and what those apps add to its pages comes through
incidents/extensions.py."""

import ast
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Permission
from django.db.migrations.loader import MigrationLoader

from destinations.models import Destination
from incidents import lifecycle
from tests.conftest import make_user

APPS_ON_TOP = {"integrations", "destinations", "notifications", "oncall"}


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_incidents_imports_no_app_built_on_it():
    incidents = Path(settings.BASE_DIR) / "incidents"
    offenders = {
        f"{path.relative_to(incidents)}: {module}"
        for path in incidents.rglob("*.py")
        for module in imported_modules(path)
        if module.split(".")[0] in APPS_ON_TOP
    }
    assert offenders == set()


def test_incidents_migrations_need_no_other_app_of_the_project():
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    needed = {
        parent for key in graph.nodes if key[0] == "incidents"
        for parent in graph.node_map[key].parents
    }
    assert {app for app, _ in needed} & APPS_ON_TOP == set()


def route_on_the_service_page(client, user, service, destination):
    """Add one Destinations row on the service's admin page, as ``user``."""
    client.force_login(user)
    url = f"/admin/incidents/service/{service.pk}/change/"
    prefix = client.get(url).context["inline_admin_formsets"][0].formset.prefix
    return client.post(url, {
        "name": service.name, "team": service.team.pk, "description": "",
        f"{prefix}-TOTAL_FORMS": "1", f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-0-destination": destination.pk,
    })


def test_manager_routes_a_service_to_a_destination_on_the_service_page(
    client, manager, service
):
    hook = Destination.objects.create(name="Status page", kind="webhook")
    response = route_on_the_service_page(client, manager, service, hook)
    assert response.status_code == 302
    assert list(service.destinations.all()) == [hook]


def test_changing_a_services_routes_takes_the_same_permission_in_the_admin_as_in_the_api(
    client, service
):
    # Only "change service" (and seeing destinations to pick one): as PUT services/<id>/.
    editor = make_user("service-editor")
    editor.user_permissions.add(*Permission.objects.filter(
        codename__in=["view_service", "change_service", "view_destination"]))
    hook = Destination.objects.create(name="Status page", kind="webhook")
    response = route_on_the_service_page(client, editor, service, hook)
    assert response.status_code == 302
    assert list(service.destinations.all()) == [hook]


def test_responder_sees_a_services_destinations_without_changing_them(
    client, responder, service
):
    hook = Destination.objects.create(name="Status page", kind="webhook")
    service.destinations.add(hook)
    client.force_login(responder)
    page = client.get(f"/admin/incidents/service/{service.pk}/change/")
    formset = page.context["inline_admin_formsets"][0]
    assert "Status page" in page.content.decode()
    assert not formset.has_add_permission and not formset.has_delete_permission


def test_incident_page_lists_what_was_sent_through_the_destinations_panel(
    client, manager, service
):
    Destination.objects.create(name="Status page", kind="webhook").services.add(service)
    incident = lifecycle.open_incident(service=service, title="Checkout 500s", entity_id="w")
    client.force_login(manager)
    page = client.get(f"/admin/incidents/incident/{incident.pk}/change/").content.decode()
    assert "Sent to destinations" in page and 'class="tocsin-deliveries"' in page
    assert f"?incident__id__exact={incident.pk}" in page
