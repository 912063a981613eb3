"""Acknowledging or resolving an incident between two steps, by every path there is (the
API, the admin, an alert, an acknowledge link): the next step never runs, the page
messages still waiting are cancelled and never sent, and the acknowledgement names who
made it where there is someone."""

from datetime import timedelta

import pytest
from django.urls import reverse

from incidents import lifecycle
from oncall import escalation
from oncall.acklinks import make_token
from oncall.models import PersonalNotification
from oncall.sending import send_personal_notification
from tests.conftest import api_client_for
from tests.escalation_helpers import (  # noqa: F401 (fixture clock)
    contact,
    escalation_of,
    frozen_clock,
    make_policy,
    open_incident,
    pages,
    person,
    step,
    timeline,
)
from tests.ingest_helpers import post_event, run_tasks  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def paged(inline, clock, twilio, service, team):
    """Step 1 has paged rita (email at once, SMS after 10 minutes); step 2, max, is due in
    5 minutes. Returns the incident."""
    rita, max_ = person("rita"), person("max")
    contact(rita, "email", "rita.work@example.com", 0)
    contact(rita, "sms", "+4915112345678", 10)
    service.escalation_policy = make_policy(team, step(5, rita), step(5, max_))
    service.save()
    incident = open_incident(inline, service)
    assert pages(incident) == [("rita", 0, 0)]
    return incident


def through_api(incident, user, verb, **_):
    response = api_client_for(user).post(f"/api/v1/incidents/{incident.pk}/{verb}/")
    assert response.status_code == 200, response.content


def in_the_admin(incident, user, verb, client, **_):
    client.force_login(user)
    response = client.post(reverse(f"admin:incidents_incident_{verb}", args=[incident.pk]))
    assert response.status_code == 302


def by_alert(incident, user, verb, client, integration, capture, **_):
    alert_type = {"acknowledge": "acknowledged", "resolve": "resolved"}[verb]
    body = {"message": "Disk fine", "alert_type": alert_type, "entity_id": incident.entity_id}
    response = post_event(client, integration, body, capture=capture)
    assert response.status_code == 200, response.content


def by_link(incident, user, verb, client, **_):
    assert verb == "acknowledge"
    response = client.post(reverse("acknowledge-link",
                                   args=[make_token(user.pk, incident.pk)]))
    assert response.status_code == 200


@pytest.fixture
def settle(client, integration, inline, run_tasks,  # noqa: F811
           django_capture_on_commit_callbacks):
    """settle(path, incident, user, verb): acknowledge or resolve the incident that way."""
    def run(path, incident, user, verb):
        path(incident, user, verb, client=client, integration=integration,
             capture=django_capture_on_commit_callbacks)
        incident.refresh_from_db()
    return run


def assert_nothing_more_happens(clock, inline, incident, twilio):
    """However long we wait, step 2 never runs and the SMS never goes out."""
    clock.advance(minutes=30)
    assert inline(escalation.run_step, incident.pk) == "not due"
    assert inline(escalation.run_due) == 0
    sms = PersonalNotification.objects.get(incident=incident, kind="sms")
    assert inline(send_personal_notification, sms.pk) == "not due or already taken"
    assert pages(incident) == [("rita", 0, 0)]
    assert twilio.requests == []


@pytest.mark.parametrize("path", [through_api, in_the_admin, by_alert, by_link])
def test_an_acknowledgement_between_step_one_and_two_stops_the_escalation(
        paged, path, settle, clock, inline, twilio):
    rita = paged.pages.get().user

    settle(path, paged, rita, "acknowledge")

    assert paged.status == "acknowledged"
    row = escalation_of(paged)
    assert (row.status, row.next_due_at, row.note) == ("stopped", None, "incident acknowledged")
    sms = PersonalNotification.objects.get(incident=paged, kind="sms")
    assert (sms.status, sms.next_attempt_at, sms.error) == (
        "cancelled", None,
        f"Not sent: incident #{paged.number} was acknowledged before this was due.")
    assert PersonalNotification.objects.get(incident=paged, kind="email").status == "sent"
    assert_nothing_more_happens(clock, inline, paged, twilio)


@pytest.mark.parametrize(("path", "who"), [(through_api, "rita"), (in_the_admin, "rita"),
                                           (by_link, "rita"), (by_alert, None)])
def test_acknowledged_by_names_the_person_and_is_empty_for_an_alert(paged, path, who, settle):
    rita = paged.pages.get().user

    settle(path, paged, rita, "acknowledge")

    assert (paged.acknowledged_by.username if paged.acknowledged_by else None) == who
    by = " by Rita" if who else ""
    assert f"Escalation stopped: acknowledged{by}; 1 waiting message not sent" in \
        timeline(paged, "escalation")


@pytest.mark.parametrize("path", [through_api, by_alert])
def test_resolving_between_step_one_and_two_stops_the_escalation(paged, path, settle, clock,
                                                                 inline, twilio):
    rita = paged.pages.get().user

    settle(path, paged, rita, "resolve")

    assert paged.status == "resolved"
    assert (escalation_of(paged).status, escalation_of(paged).note) == (
        "stopped", "incident resolved")
    sms = PersonalNotification.objects.get(incident=paged, kind="sms")
    assert (sms.status, sms.error) == (
        "cancelled", f"Not sent: incident #{paged.number} was resolved before this was due.")
    assert_nothing_more_happens(clock, inline, paged, twilio)


def test_resolving_an_acknowledged_incident_cancels_what_a_later_page_still_had_waiting(
        paged, settle, clock, inline, twilio):
    rita = paged.pages.get().user
    settle(through_api, paged, rita, "acknowledge")
    # A responder brought in after the acknowledgement: their rules run until resolved.
    sam = person("sam")
    contact(sam, "sms", "+4915199999999", 15)
    response = api_client_for(rita).post(f"/api/v1/incidents/{paged.pk}/pages/",
                                         {"user": sam.pk}, format="json")
    assert response.status_code == 201
    sams = PersonalNotification.objects.get(user=sam)
    assert sams.status == "pending"

    settle(through_api, paged, rita, "resolve")

    sams.refresh_from_db()
    assert (sams.status, sams.next_attempt_at) == ("cancelled", None)
    clock.advance(minutes=20)
    assert inline(send_personal_notification, sams.pk) == "not due or already taken"
    assert twilio.requests == []


def test_a_step_due_when_the_incident_is_already_acknowledged_stops_instead(
        paged, clock, inline):
    # As if the acknowledgement's own update of the escalation had been lost: the step
    # still checks the incident, under its lock, before paging anyone.
    paged.status = "acknowledged"
    paged.save(update_fields=["status"])
    clock.advance(minutes=5)

    assert inline(escalation.run_step, paged.pk) == "stopped"

    assert pages(paged) == [("rita", 0, 0)]
    row = escalation_of(paged)
    assert (row.status, row.next_due_at) == ("stopped", None)
    assert clock.now() - row.last_step_at == timedelta(minutes=5)


def test_an_acknowledgement_that_waited_for_a_running_step_still_stops_its_messages(
        paged, clock, inline, twilio):
    """The acknowledgement reads its clock, then waits for the incident's lock while a
    step holds it: the step's pages are then a moment younger than the acknowledgement,
    and their messages must stop all the same."""
    clock.advance(seconds=-1)  # the acknowledgement's clock, read before the step's pages

    assert inline(lifecycle.acknowledge, paged, actor=paged.pages.get().user)

    sms = PersonalNotification.objects.get(incident=paged, kind="sms")
    assert sms.status == "cancelled"
    clock.advance(minutes=30)
    assert inline(send_personal_notification, sms.pk) == "not due or already taken"
    assert twilio.requests == []
