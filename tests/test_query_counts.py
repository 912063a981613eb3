"""How many SQL queries the hot paths make: ingest, processing, the admin's incident pages
and the incidents API (README.md, "Query counts").

Each count is exact, with what every query is for, so a query saved or added shows up
here and the breakdown is updated with it. The pages are also measured with a few rows and
with many: a count that grows with the rows is an N+1 (a relation read per row instead of
select_related/prefetch_related).

The tests run inside a transaction, so the outermost transaction.atomic() of the code
under test shows as SAVEPOINT ... RELEASE SAVEPOINT; in production it is a BEGIN/COMMIT,
which Django does not log. Inner atomic blocks are savepoints in both. The counts are the
same on SQLite and PostgreSQL: the locks (SELECT ... FOR UPDATE on PostgreSQL, none on
SQLite) change the SQL, not the number of statements.
"""

import json
import re
from datetime import date, time, timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from destinations.models import Destination
from destinations.sending import delivery_outbox
from incidents import lifecycle
from incidents.models import EscalationPolicy, Incident, Tag
from integrations import queue as inbound_queue
from integrations.models import Alert, InboundEvent
from integrations.processing import process_event
from notifications.models import NotificationSettings
from notifications.sending import notification_outbox
from oncall.models import Escalation, Override, Page, PersonalNotification, Rotation, Schedule
from tests.conftest import api_client_for, make_user
from tests.ingest_helpers import post_event

# The generic webhook, one accepted alert without an Idempotency-Key:
#  1. the integration, by its key
#  2. the rate limit's count (one INSERT ... ON CONFLICT DO UPDATE ... RETURNING; none
#     with Redis, where the count is kept)
#  3-5. the inbound event, stored in its own transaction (SAVEPOINT, INSERT, RELEASE)
# Handing it to the queue after commit costs none (the broker's own write aside).
INGEST_QUERIES = 5
# With an Idempotency-Key: the earlier answer is looked up first, and the answer is
# remembered in the transaction that stores the event:
#  1. the integration   2. an earlier request with this key (none)   3. the rate limit
#  4. SAVEPOINT (the transaction for event and answer)
#  5-7. the inbound event: SAVEPOINT, INSERT, RELEASE (store_event's own atomic block)
#  8. DELETE an answer to this key older than the window, if any (the key may be reused)
#  9. INSERT the answer   10. RELEASE
INGEST_WITH_KEY_QUERIES = 10

# Processing a critical alert that opens an incident, on a service with one destination
# and a portal with one recipient of Incidents emails:
#  1. start the attempt (conditional UPDATE, committed on its own)
#  2. the event, with its integration
#  3. the integration's alert rules
#  4. SAVEPOINT (the transaction that stores and routes the alert)
#  5. the event again, locked, with integration, service and team
#  6. INSERT the alert
#  7. an open incident for the entity (none)
#  8-9. SAVEPOINT twice (open_for_alert's atomic block, then open_incident's)
#  10-11. the incident number: lock the counter row, UPDATE it
#  12. INSERT the incident   13. INSERT its "triggered" timeline entry
#  14. the service's destinations   15. INSERT their pending deliveries (one statement)
#  16. the notification settings (who gets Incidents emails)
#  17. SAVEPOINT (recording the email)   18. an email already recorded for this happening
#  19-21. SAVEPOINT, INSERT the email, RELEASE (get_or_create)   22. RELEASE (of 17.)
#  23-24. RELEASE open_incident's and open_for_alert's savepoints
#  25. link the alert to the incident (UPDATE)
#  26. INSERT the "alert" timeline entry
#  27. mark the event completed (UPDATE)
#  28. RELEASE (commit of the routing transaction)
#  after commit: 29. the pending deliveries to queue   30. the pending email to queue
OPENING_QUERIES = 30
# An alert for an entity whose incident is open: 1-7 as above (7. finds the incident,
# with its service and team), then
#  8. link the alert to the incident   9. INSERT the "alert" timeline entry
#  10. mark the event completed   11. RELEASE
JOINING_QUERIES = 11
# A resolved alert for an open incident: 1-9 as when joining, then the resolve:
#  10. SAVEPOINT (lifecycle's atomic block)   11. the conditional UPDATE of the status
#  12. INSERT the "resolved" timeline entry
#  13. the service's destinations   14. INSERT their pending deliveries
#  15. the notification settings   16-21. record the email, as 17-22 when opening
#  22. stop the incident's escalation (a conditional UPDATE)
#  23. cancel its page messages still waiting (one UPDATE)
#  24. RELEASE   25. mark the event completed   26. RELEASE
#  after commit: 27. the pending deliveries to queue   28. the pending email to queue
RESOLVING_QUERIES = 28

# Every admin page, signed in: 1. the session   2. the user
#  3-4. the user's permissions (granted to the user, then through groups; cached for the
#  rest of the request)
# The incident list, then:
#  5. the services, for the "service" filter
#  6. how many incidents match the filters (the paginator)
#  7. how many incidents there are in all (the "N total" the admin shows when filtered)
#  8. the page of incidents, with service (select_related) and alert count (annotate)
#  9. their assignees, for the "Assignees" column (prefetch_related: one query for the
#  page, however many incidents it lists)
#  10-11. the date hierarchy: first and last date, then the days that have incidents
INCIDENT_LIST_QUERIES = 11
# One incident's page as a Responder, who may see but not edit its fields:
#  3. the incident, with service, who acknowledged it and alert count
#  4. its assignees (the "Assignees" field)   5-6. permissions
#  7. its tags   8. its timeline   9. its deliveries, with their destinations
#  10. the people paged, with their users   11. the messages of those pages (read once
#  for the Escalation and Pages sections)   12. its escalation (the Escalation section:
#  the policy's snapshot, the step, when the next is due; who the latest step paged is
#  among 10.)   13. the people who can be paged (the "Page someone" choice)
# (11 before escalations: 4. and 12. are the two sections' new facts, one query each.)
RESPONDER_INCIDENT_PAGE_QUERIES = 13
# As a Manager, who may edit them: the form adds one query per choice list:
#  8-11. priorities, SLAs, escalation policies, tags (the incident's tags are 7.)
MANAGER_INCIDENT_PAGE_QUERIES = 17

# The schedule list, signed in as a Manager (1-4 as for every admin page), then:
#  5. the teams, for the "team" filter
#  6. how many schedules match the filters (the paginator)
#  7. how many schedules there are in all
#  8. the page of schedules, with team and fallback user (select_related)
#  9-11. who is on call now in all of them at once (oncall.shifts.load_specs): their
#  rotations, the overrides in force, which of the participants still exist
#  12. the usernames of everyone on call
SCHEDULE_LIST_QUERIES = 12

# GET /api/v1/incidents/ with a token:
#  1. the token, with its user   2-3. the user's permissions
#  4. the count for the page   5. the page of incidents, with alert counts and who
#  acknowledged them   6. their tags   7. their assignees (both prefetch_related)
INCIDENT_API_LIST_QUERIES = 7

FEW, MANY = 3, 30


@pytest.fixture(autouse=True)
def counter_in_the_database(settings):
    # Without REDIS_URL the rate limit is counted in the database: the count above.
    settings.REDIS_URL = ""


@pytest.fixture
def handed_to_queue(monkeypatch):
    """Record the tasks handed to django-q2 instead of queueing them: the broker's own
    writes (the ORM broker's, none with Redis) are django-q2's business, not counted here."""
    handed = []

    def record(func_path, *args, **kwargs):
        handed.append((func_path, *args))

    monkeypatch.setattr("tocsin.taskqueue.async_task", record)
    return handed


def test_accepted_alert_costs_five_queries(client, integration, handed_to_queue,
                                           django_assert_num_queries,
                                           django_capture_on_commit_callbacks):
    with django_assert_num_queries(INGEST_QUERIES), \
            django_capture_on_commit_callbacks(execute=True):
        response = post_event(client, integration, {"message": "Disk full"})
    assert response.status_code == 200
    event = InboundEvent.objects.get(trace_id=response.json()["trace_id"])
    assert handed_to_queue == [(inbound_queue.PROCESS_TASK, event.pk)]


def test_accepted_alert_with_idempotency_key_costs_ten_queries(
        client, integration, handed_to_queue, django_assert_num_queries,
        django_capture_on_commit_callbacks):
    with django_assert_num_queries(INGEST_WITH_KEY_QUERIES), \
            django_capture_on_commit_callbacks(execute=True):
        response = post_event(client, integration, {"message": "Disk full"},
                              HTTP_IDEMPOTENCY_KEY="retry-1")
    assert response.status_code == 200
    event = InboundEvent.objects.get(trace_id=response.json()["trace_id"])
    assert handed_to_queue == [(inbound_queue.PROCESS_TASK, event.pk)]


@pytest.fixture
def routed_service(service):
    """A service with a destination, on a portal that emails someone about incidents and
    has handed out incident numbers before."""
    lifecycle.open_incident(service=service, title="Earlier", entity_id="earlier")
    service.destinations.add(Destination.objects.create(
        name="Hook", kind="webhook", config={"url": "https://hooks.example.com/tocsin"}))
    NotificationSettings.objects.update_or_create(
        pk=1, defaults={"default_recipients": ["oncall@example.com"]})
    return service


def stored_event(integration, body) -> InboundEvent:
    return InboundEvent.objects.create(
        integration=integration, source="generic", body=json.dumps(body).encode())


def test_alert_that_opens_an_incident_costs_thirty_queries(
        routed_service, integration, handed_to_queue, django_assert_num_queries,
        django_capture_on_commit_callbacks):
    event = stored_event(integration, {"message": "DB down", "alert_type": "critical",
                                       "entity_id": "db"})
    with django_assert_num_queries(OPENING_QUERIES), \
            django_capture_on_commit_callbacks(execute=True):
        assert process_event(event.pk) == "completed"
    incident = Incident.objects.get(entity_id="db")
    assert Alert.objects.get(inbound_event=event).incident == incident
    assert [task for task, *_ in handed_to_queue] == [
        delivery_outbox.task, notification_outbox.task]


def test_alert_that_joins_an_open_incident_costs_eleven_queries(
        routed_service, integration, handed_to_queue, django_assert_num_queries,
        django_capture_on_commit_callbacks):
    incident = lifecycle.open_incident(service=routed_service, title="DB down",
                                       entity_id="db")
    event = stored_event(integration, {"message": "DB still down", "alert_type": "critical",
                                       "entity_id": "db"})
    with django_assert_num_queries(JOINING_QUERIES), \
            django_capture_on_commit_callbacks(execute=True):
        assert process_event(event.pk) == "completed"
    assert Alert.objects.get(inbound_event=event).incident == incident
    assert handed_to_queue == []


def add_incidents(service, integration, count: int) -> Incident:
    """`count` more incidents, each with an alert, a tag and a note by its own person, so
    that anything read per row costs a query per row. Returns the last one."""
    for _ in range(count):
        number = Incident.objects.count() + 1
        author = User.objects.create(username=f"author-{number}")
        incident = lifecycle.open_incident(
            service=service, title=f"Disk full on db-{number}", entity_id=f"db-{number}",
            tags=[Tag.objects.create(name=f"tag-{number}")],
        )
        Alert.objects.create(integration=integration, incident=incident,
                             message=f"Disk full on db-{number}", entity_id=f"db-{number}")
        lifecycle.add_note(incident, "Looking", actor=author)
        incident.assignees.add(author)
        EscalationPolicy.objects.create(name=f"Policy {number}", team=service.team)
    return incident


def crowd(incident, integration, count: int) -> None:
    """Give one incident `count` alerts, tags, notes by different people, deliveries to
    different destinations and pages of different people, made by an escalation step that
    paged them all: what its page lists."""
    tags = Tag.objects.bulk_create(
        Tag(name=f"{incident.pk}-extra-{index}") for index in range(count))
    incident.tags.add(*tags)
    Alert.objects.bulk_create(
        Alert(integration=integration, incident=incident, message="again",
              entity_id=incident.entity_id) for _ in range(count))
    for index in range(count):
        author = User.objects.create(username=f"{incident.pk}-author-{index}")
        lifecycle.add_note(incident, f"Note {index}", actor=author)
        page = Page.objects.create(incident=incident, user=author, step=0)
        PersonalNotification.objects.create(
            page=page, incident=incident, user=author, kind="email", purpose="page",
            address=f"{author.username}@example.com", dedup_key=f"page:{page.pk}")
    destinations = Destination.objects.bulk_create(
        Destination(name=f"Hook {incident.pk}-{index}", kind="webhook",
                    config={"url": f"https://hooks.example.com/{index}"})
        for index in range(count))
    incident.service.destinations.set(destinations)
    Escalation.objects.create(
        incident=incident, plan={"name": "Primary", "repeat": 0, "steps": [
            {"delay_minutes": 5, "targets": []}]},
        next_step=1, steps_run=1, last_step_at=timezone.now(),
        next_due_at=timezone.now() + timedelta(minutes=5))
    # One delivery per destination, recorded the way every state change records them.
    assert lifecycle.acknowledge(incident)
    assert incident.deliveries.count() == count


def test_incident_list_costs_the_same_for_three_incidents_as_for_thirty(
        client, service, integration, manager, django_assert_num_queries):
    client.force_login(manager)
    url = reverse("admin:incidents_incident_changelist")
    add_incidents(service, integration, FEW)
    with django_assert_num_queries(INCIDENT_LIST_QUERIES):
        assert client.get(url).status_code == 200
    add_incidents(service, integration, MANY - FEW)
    with django_assert_num_queries(INCIDENT_LIST_QUERIES):
        page = client.get(url)
    assert page.status_code == 200
    assert page.content.decode().count('name="_selected_action"') == MANY
    assert page.content.decode().count('<td class="field-assignee_list">author-') == MANY


@pytest.mark.parametrize("role, expected", [
    ("Responder", RESPONDER_INCIDENT_PAGE_QUERIES),
    ("Manager", MANAGER_INCIDENT_PAGE_QUERIES),
])
def test_incident_page_costs_the_same_for_three_rows_as_for_thirty(
        client, service, integration, role, expected, django_assert_num_queries):
    client.force_login(make_user("viewer", role))
    few = add_incidents(service, integration, FEW)
    many = add_incidents(service, integration, MANY - FEW)
    crowd(few, integration, FEW)
    crowd(many, integration, MANY)
    # Django caches content types per process; the first page that needs one looks it up
    # once. Measured after that, as on a server that has shown a page before.
    client.get(reverse("admin:incidents_incident_change", args=[few.pk]))
    with django_assert_num_queries(expected):
        assert client.get(
            reverse("admin:incidents_incident_change", args=[few.pk])).status_code == 200
    with django_assert_num_queries(expected):
        page = client.get(reverse("admin:incidents_incident_change", args=[many.pk]))
    assert page.status_code == 200
    assert page.content.decode().count('<tr><td><a href="/admin/destinations/delivery/') == MANY
    paged = re.search(r"<dt>Paged</dt><dd>(.*?)</dd>", page.content.decode()).group(1)
    assert paged.count(f"{many.pk}-author-") == MANY


def test_incidents_api_list_costs_the_same_for_three_incidents_as_for_thirty(
        service, integration, responder, django_assert_num_queries):
    api = api_client_for(responder)
    add_incidents(service, integration, FEW)
    with django_assert_num_queries(INCIDENT_API_LIST_QUERIES):
        assert api.get("/api/v1/incidents/").status_code == 200
    add_incidents(service, integration, MANY - FEW)
    with django_assert_num_queries(INCIDENT_API_LIST_QUERIES):
        listed = api.get("/api/v1/incidents/").json()
    assert listed["count"] == MANY
    assert all(len(incident["tags"]) == 1 and incident["alert_count"] == 1
               for incident in listed["results"])

def add_schedules(team, count: int) -> None:
    """`count` more schedules, each with its own fallback user, a daily rotation of its own
    two people and an override in force now putting a third on call: everything the "On
    call now" column reads differs from row to row."""
    now = timezone.now()
    for _ in range(count):
        number = Schedule.objects.count() + 1
        first, second, stand_in, fallback = (
            User.objects.create(username=f"{role}-{number}")
            for role in ("first", "second", "stand-in", "fallback"))
        schedule = Schedule.objects.create(name=f"Schedule {number}", team=team,
                                           time_zone="Europe/Berlin", fallback_user=fallback)
        Rotation.objects.create(schedule=schedule, name="Primary", shift_kind="daily",
                                handoff_date=date(2026, 1, 5), handoff_time=time(9),
                                participants=[first.pk, second.pk])
        Override.objects.create(schedule=schedule, user=stand_in, start=now - timedelta(hours=1),
                                end=now + timedelta(hours=1))


def test_schedule_list_costs_the_same_for_three_schedules_as_for_thirty(
        client, team, manager, django_assert_num_queries):
    client.force_login(manager)
    url = reverse("admin:oncall_schedule_changelist")
    add_schedules(team, FEW)
    with django_assert_num_queries(SCHEDULE_LIST_QUERIES):
        assert client.get(url).status_code == 200
    add_schedules(team, MANY - FEW)
    with django_assert_num_queries(SCHEDULE_LIST_QUERIES):
        page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('<td class="field-on_call_now">stand-in-') == MANY



def test_alert_that_resolves_an_open_incident_costs_twenty_eight_queries(
        routed_service, integration, handed_to_queue, django_assert_num_queries,
        django_capture_on_commit_callbacks):
    incident = lifecycle.open_incident(service=routed_service, title="DB down",
                                       entity_id="db")
    event = stored_event(integration, {"message": "DB is back", "alert_type": "resolved",
                                       "entity_id": "db"})
    with django_assert_num_queries(RESOLVING_QUERIES), \
            django_capture_on_commit_callbacks(execute=True):
        assert process_event(event.pk) == "completed"
    incident.refresh_from_db()
    assert incident.status == "resolved"
    assert Alert.objects.get(inbound_event=event).incident == incident
    assert [task for task, *_ in handed_to_queue] == [
        delivery_outbox.task, notification_outbox.task]
