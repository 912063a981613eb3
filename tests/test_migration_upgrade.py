"""An existing install upgrades cleanly: a database built with the migrations of commit
756d098 (tests/legacy, where Service.destinations belonged to incidents and incidents'
roles migration granted every app's permissions) keeps its links and permissions when
migrated with today's migrations, and ends with the schema of a fresh database."""

import importlib

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.db.migrations import RunPython
from django.db.migrations.exceptions import IrreversibleError
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings

from destinations.models import Destination
from incidents.models import Service

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

APPS = ["incidents", "destinations", "integrations", "notifications"]
LEGACY = {app: f"tests.legacy.{app}.migrations" for app in APPS}
# Apps added since 756d098 migrate with their own migrations in both builds: they depend on
# the old apps, so emptying those unapplies them too, and the way back must reapply them.
NEWER_APPS = ["oncall"]


def migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets(executor.loader.graph))
    executor.loader.build_graph()
    return executor


def to_the_leaves(graph):
    return [key for key in graph.leaf_nodes() if key[0] in APPS + NEWER_APPS]


def to_zero(graph):
    return [(app, None) for app in APPS]


@pytest.fixture(autouse=True)
def back_to_todays_schema():
    """Whatever a test leaves, the next one finds the database at today's migrations."""
    yield
    migrate(to_the_leaves)


@pytest.fixture
def routing_may_be_unapplied(monkeypatch):
    """These tests empty the database to build an old one, through the routing migration,
    which an operator cannot reverse (it would drop every route): let them."""
    routing = importlib.import_module("destinations.migrations.0006_service_routing")
    move_links = next(operation for operation in routing.Migration.operations
                      if isinstance(operation, RunPython))
    monkeypatch.setattr(move_links, "reverse_code", RunPython.noop)


def group_permissions() -> dict[str, set[str]]:
    return {
        group.name: {f"{p.content_type.app_label}.{p.codename}"
                     for p in group.permissions.select_related("content_type")}
        for group in Group.objects.all()
    }


def schema() -> dict[str, list[str]]:
    with connection.cursor() as cursor:
        return {
            table: sorted(column.name for column in
                          connection.introspection.get_table_description(cursor, table))
            for table in connection.introspection.table_names(cursor)
            if table.split("_")[0] in APPS
        }


def build_legacy_database():
    """Today's migrations off, the 756d098 ones on: the database of an existing install,
    with a service routed to two destinations and another to one."""
    migrate(to_zero)
    with override_settings(MIGRATION_MODULES=LEGACY):
        executor = migrate(to_the_leaves)
        old = executor.loader.project_state(executor.loader.graph.leaf_nodes()).apps
    Team = old.get_model("incidents", "Team")
    OldService = old.get_model("incidents", "Service")
    Destination = old.get_model("destinations", "Destination")
    team = Team.objects.create(name="Platform")
    checkout = OldService.objects.create(name="Checkout", team=team)
    search = OldService.objects.create(name="Search", team=team)
    slack = Destination.objects.create(name="Ops channel", kind="slack")
    hook = Destination.objects.create(name="Status page", kind="webhook")
    checkout.destinations.set([slack, hook])
    search.destinations.set([hook])
    return {"Checkout": {slack.pk, hook.pk}, "Search": {hook.pk}}


def routes() -> dict[str, set[int]]:
    return {service.name: {d.pk for d in service.destinations.all()}
            for service in Service.objects.prefetch_related("destinations")}


def test_migrating_back_past_the_routing_migration_is_refused_and_keeps_the_routes(
    service
):
    destination = Destination.objects.create(name="Status page", kind="webhook")
    destination.services.add(service)
    with pytest.raises(IrreversibleError):
        migrate(lambda graph: [("destinations", "0005_outbox")])
    assert routes() == {service.name: {destination.pk}}


@pytest.mark.usefixtures("routing_may_be_unapplied")
def test_fresh_database_grants_the_groups_what_the_old_migrations_granted():
    fresh = group_permissions()
    build_legacy_database()
    assert group_permissions() == fresh
    assert fresh["Responder"] >= {"incidents.view_incident", "integrations.view_alert",
                                  "destinations.view_destination"}


@pytest.mark.usefixtures("routing_may_be_unapplied")
def test_upgrade_keeps_service_destinations_and_group_permissions():
    fresh_schema = schema()
    expected_routes = build_legacy_database()
    # A permission an Administrator took away must stay away: the upgrade grants nothing.
    Group.objects.get(name="Responder").permissions.remove(
        *Group.objects.get(name="Responder").permissions.filter(codename="view_inboundevent")
    )
    before = group_permissions()
    assert "incidents_service_destinations" in schema()

    migrate(to_the_leaves)

    assert routes() == expected_routes
    assert group_permissions() == before
    assert "integrations.view_inboundevent" not in before["Responder"]
    assert schema() == fresh_schema
