"""Every list in the API has a fixed, documented order (docs/api.md), ended by the id, so
limit/offset paging never skips or repeats a row; ``?ordering=`` works where documented."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from destinations.models import Delivery, Destination
from incidents import lifecycle
from incidents.models import EscalationPolicy, Incident, Service, Team
from integrations.models import Alert, AlertRule, InboundEvent, Integration, IntegrationToken
from oncall.models import ContactMethod, NotificationRule, Override, Schedule
from tests.conftest import api_client_for, make_user
from tocsin.urls import router


@pytest.fixture
def one_of_everything(service, integration, incident):
    hook = Integration.objects.create(name="Grafana", kind="incoming_webhook", service=service)
    IntegrationToken.issue(hook, name="grafana")
    AlertRule.objects.create(integration=integration, name="Quiet", position=1,
                             conditions=[], actions=[{"type": "suppress"}])
    event = InboundEvent.objects.create(integration=integration, source="generic", body=b"{}")
    Alert.objects.create(integration=integration, inbound_event=event, incident=incident,
                         message="Disk full", entity_id="db-1")
    destination = Destination.objects.create(name="hook", kind="webhook",
                                             config={"url": "https://example.com/hook"})
    Delivery.objects.create(destination=destination, incident=incident, event="triggered")
    person = make_user("olga")
    method = ContactMethod.objects.create(user=person, kind="email", address="olga@example.com")
    NotificationRule.objects.create(user=person, contact_method=method)
    schedule = Schedule.objects.create(name="Primary", team=service.team)
    Override.objects.create(schedule=schedule, user=person, start=timezone.now(),
                            end=timezone.now() + timedelta(hours=1))
    EscalationPolicy.objects.create(name="Checkout", team=service.team)
    return {"integration": integration, "hook": hook, "schedule": schedule}


LISTS = {
    "teams/": ['"name" ASC', '"id" ASC'],
    "services/": ['"name" ASC', '"id" ASC'],
    "integrations/": ['"name" ASC', '"id" ASC'],
    "integrations/{hook}/tokens/": ['"created_at" DESC', '"id" DESC'],
    "integrations/{integration}/rules/": ['"position" ASC', '"id" ASC'],
    "incidents/": ['"number" DESC', '"id" DESC'],
    "alerts/": ['"created_at" DESC', '"id" DESC'],
    "inbound-events/": ['"received_at" DESC', '"id" DESC'],
    "destinations/": ['"name" ASC', '"id" ASC'],
    "deliveries/": ['"created_at" DESC', '"id" DESC'],
    "users/": ['"username" ASC', '"id" ASC'],
    "contact-methods/": ['"user_id" ASC', '"id" ASC'],
    "notification-rules/": ['"user_id" ASC', '"delay_minutes" ASC', '"id" ASC'],
    "schedules/": ['"name" ASC', '"id" ASC'],
    "schedules/{schedule}/overrides/": ['"start" ASC', '"id" ASC'],
    "escalation-policies/": ['"name" ASC', '"id" ASC'],
}


def page_query(client, url) -> str:
    """The SQL that fetched the page (the one query LIMITed to the page size asked for)."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url + "?limit=13")
    assert response.status_code == 200, response.content
    assert response.json()["results"], "the list must not be empty for this check"
    [sql] = [q["sql"] for q in queries.captured_queries if " LIMIT 13" in q["sql"]]
    return sql


@pytest.mark.parametrize("path", LISTS)
def test_every_list_endpoint_is_ordered_and_ends_with_the_id(path, one_of_everything,
                                                             administrator):
    client = api_client_for(administrator)
    ids = {name: obj.pk for name, obj in one_of_everything.items()}
    sql = page_query(client, "/api/v1/" + path.format(**ids))
    order_by = sql.rsplit(" ORDER BY ", 1)[1].split(" LIMIT ")[0]
    terms = [term.strip() for term in order_by.split(",")]
    assert len(terms) == len(LISTS[path])
    for term, expected in zip(terms, LISTS[path], strict=True):
        assert term.endswith(expected), (term, expected)


def test_every_list_route_is_covered(one_of_everything):
    """A new list route must be added to LISTS (and to the table in docs/api.md)."""
    routed = {prefix + "/" for prefix, _, _ in router.registry}
    assert routed <= set(LISTS)


def make_incidents(service, count: int) -> list[Incident]:
    """``count`` incidents created at the very same instant, each with one alert, so the
    alert_count annotation applies and created_at decides nothing."""
    integration = Integration.objects.create(name="Bulk", kind="generic", service=service)
    incidents = [lifecycle.open_incident(service=service, title=f"Incident {n}",
                                         entity_id=f"e{n}") for n in range(count)]
    Incident.objects.filter(pk__in=[i.pk for i in incidents]).update(
        created_at=timezone.now())
    Alert.objects.bulk_create(Alert(integration=integration, incident=incident,
                                    message=incident.title, entity_id=incident.entity_id)
                              for incident in incidents)
    return incidents


def page_through(client, url: str, limit: int = 7) -> list[dict]:
    seen, offset = [], 0
    while True:
        separator = "&" if "?" in url else "?"
        response = client.get(f"{url}{separator}limit={limit}&offset={offset}")
        assert response.status_code == 200, response.content
        page = response.json()["results"]
        if not page:
            return seen
        seen.extend(page)
        offset += limit


def test_paging_through_incidents_created_at_once_sees_each_exactly_once_newest_first(
    service, responder
):
    incidents = make_incidents(service, 120)
    seen = page_through(api_client_for(responder), "/api/v1/incidents/")
    assert [row["id"] for row in seen] == [i.pk for i in sorted(
        incidents, key=lambda i: i.number, reverse=True)]
    assert all(row["alert_count"] == 1 for row in seen)


def test_paging_by_created_at_falls_back_to_the_id_for_ties(service, responder):
    incidents = make_incidents(service, 30)
    seen = page_through(api_client_for(responder), "/api/v1/incidents/?ordering=created_at")
    assert [row["id"] for row in seen] == sorted(i.pk for i in incidents)


def test_incidents_can_be_ordered_by_number_either_way(service, responder):
    make_incidents(service, 5)
    client = api_client_for(responder)
    ascending = [r["number"] for r in client.get("/api/v1/incidents/?ordering=number")
                 .json()["results"]]
    descending = [r["number"] for r in client.get("/api/v1/incidents/?ordering=-number")
                  .json()["results"]]
    assert ascending == sorted(ascending) and len(ascending) == 5
    assert descending == ascending[::-1]


def test_incidents_can_be_ordered_by_status_with_ties_by_id(service, responder):
    first, second, third = make_incidents(service, 3)
    lifecycle.acknowledge(second)
    rows = api_client_for(responder).get("/api/v1/incidents/?ordering=status").json()["results"]
    assert [r["id"] for r in rows] == [second.pk, first.pk, third.pk]


def test_an_unknown_ordering_field_is_a_400_naming_the_allowed_ones(incident, responder):
    response = api_client_for(responder).get("/api/v1/incidents/?ordering=title")
    assert response.status_code == 400
    assert response.json() == {"ordering": [
        "Unknown ordering field(s): title. Allowed: number, created_at, status, id."]}


def test_a_doubled_minus_is_a_400_not_a_500(incident, responder):
    response = api_client_for(responder).get("/api/v1/incidents/?ordering=--number")
    assert response.status_code == 400
    assert "--number" in response.json()["ordering"][0]


def test_rules_keep_their_position_order_and_refuse_another(integration, manager):
    response = api_client_for(manager).get(
        f"/api/v1/integrations/{integration.pk}/rules/?ordering=-position")
    assert response.status_code == 400
    assert "this list has a fixed order" in response.json()["ordering"][0]


def test_names_that_tie_are_listed_by_id(team, responder):
    same = [Service.objects.create(name="Checkout", team=team),
            Service.objects.create(name="Checkout", team=Team.objects.create(name="Other"))]
    rows = api_client_for(responder).get("/api/v1/services/?ordering=name").json()["results"]
    assert [r["id"] for r in rows] == sorted(s.pk for s in same)


def test_a_bad_ordering_in_the_browsable_api_is_a_400_too(incident, responder, client):
    client.force_login(responder)
    response = client.get("/api/v1/incidents/?ordering=title", HTTP_ACCEPT="text/html")
    assert response.status_code == 400
    assert b"Unknown ordering field(s): title" in response.content


def test_the_schema_names_the_ordering_fields_and_leaves_out_fixed_lists(administrator):
    schema = api_client_for(administrator).get("/api/v1/schema/?format=json").json()

    def ordering(path):
        return [p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == "ordering"]

    [parameter] = ordering("/api/v1/incidents/")
    assert "number, created_at, status, id" in parameter["description"]
    assert "Default: -number, -id" in parameter["description"]
    assert ordering("/api/v1/integrations/{integration_pk}/rules/") == []
