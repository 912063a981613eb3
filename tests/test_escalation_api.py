"""POST /api/v1/incidents/<id>/escalate/ (run the next step now), and what the incidents API
says about who is paged (assignees) and who acknowledged."""

from datetime import timedelta

import pytest
from django.utils.dateparse import parse_datetime

from incidents import lifecycle
from incidents.models import Incident
from oncall import escalation
from oncall.models import Escalation
from tests.conftest import api_client_for, make_user
from tests.escalation_helpers import (  # noqa: F401 (fixtures clock, portal_settings)
    escalation_emails,
    escalation_of,
    escalations_emailed,
    frozen_clock,
    make_policy,
    open_incident,
    pages,
    person,
    run_when_due,
    step,
    timeline,
)

pytestmark = pytest.mark.django_db


def escalate(user, incident_pk):
    return api_client_for(user).post(f"/api/v1/incidents/{incident_pk}/escalate/")


@pytest.fixture
def rita(db):
    return person("rita")


@pytest.fixture
def three_steps(inline, clock, service, team):
    """ann (then 5 min), bob (then 10 min), cid (then 3 min); step 1 has paged ann."""
    ann, bob, cid = person("ann"), person("bob"), person("cid")
    service.escalation_policy = make_policy(team, step(5, ann), step(10, bob), step(3, cid))
    service.save()
    return open_incident(inline, service)


def test_escalate_runs_the_next_step_now_and_the_following_one_waits_that_steps_delay(
        three_steps, rita, clock, inline, portal_settings):
    clock.advance(minutes=1)

    response = inline(escalate, rita, three_steps.pk)

    assert response.status_code == 200, response.content
    assert pages(three_steps) == [("ann", 0, 0), ("bob", 1, 0)]
    body = response.json()
    assert body["detail"] == "ran step 2 of 3 of Checkout on call, paged 1"
    assert {key: body[key] for key in ("status", "steps", "next_step", "loop", "steps_run")} \
        == {"status": "active", "steps": 3, "next_step": 3, "loop": 0, "steps_run": 2}
    assert parse_datetime(body["next_due_at"]) == clock.now() + timedelta(minutes=10)
    assert body["policy"]["name"] == "Checkout on call"
    said = "Escalated to step 2 of 3 of Checkout on call by Rita: paging Bob"
    assert timeline(three_steps, "escalation") == [said]
    [email] = escalation_emails()
    assert said in email.subject
    # Step 1's own due time (5 minutes) no longer applies; step 3 waits for step 2's 10.
    clock.advance(minutes=4)
    assert inline(escalation.run_due) == 0
    clock.advance(minutes=6)
    assert inline(escalation.run_due) == 1
    assert pages(three_steps)[-1] == ("cid", 2, 0)


def test_escalating_an_exhausted_escalation_runs_the_first_step_again(inline, clock, service,
                                                                      team, rita):
    ann = person("ann")
    service.escalation_policy = make_policy(team, step(5, ann))
    service.save()
    incident = open_incident(inline, service)
    run_when_due(clock, inline, incident)
    assert escalation_of(incident).status == "exhausted"

    response = inline(escalate, rita, incident.pk)

    assert response.status_code == 200, response.content
    assert pages(incident) == [("ann", 0, 0), ("ann", 0, 1)]
    assert response.json()["status"] == "active"
    assert "Escalated to step 1 of 1 of Checkout on call, repeat 1 by Rita: paging Ann" in \
        timeline(incident, "escalation")


def test_escalating_an_incident_whose_service_got_a_policy_later_starts_at_step_one(
        inline, clock, service, team, rita):
    incident = open_incident(inline, service)
    assert not Escalation.objects.filter(pk=incident.pk).exists()
    service.escalation_policy = make_policy(team, step(5, person("ann")), step(5, rita))
    service.save()

    response = inline(escalate, rita, incident.pk)

    assert response.status_code == 200, response.content
    assert pages(incident) == [("ann", 0, 0)]
    row = escalation_of(incident)
    assert (row.status, row.next_step, row.next_due_at) == (
        "active", 1, clock.now() + timedelta(minutes=5))


def test_escalating_an_acknowledged_incident_pages_the_next_step_and_goes_no_further(
        three_steps, rita, clock, inline):
    lifecycle.acknowledge(three_steps, actor=rita)

    response = inline(escalate, rita, three_steps.pk)

    assert response.status_code == 200
    assert pages(three_steps) == [("ann", 0, 0), ("bob", 1, 0)]
    assert (response.json()["status"], response.json()["next_due_at"]) == ("stopped", None)
    clock.advance(hours=1)
    assert inline(escalation.run_due) == 0


@pytest.mark.parametrize("role", ["Responder", "Manager"])
def test_responders_and_managers_may_escalate(three_steps, inline, role):
    assert inline(escalate, make_user("someone", role), three_steps.pk).status_code == 200


# --- refusals -----------------------------------------------------------------------------

def test_escalating_a_resolved_incident_is_409_and_pages_nobody(three_steps, rita, inline):
    lifecycle.resolve(three_steps, actor=rita)

    response = inline(escalate, rita, three_steps.pk)

    assert response.status_code == 409
    assert response.json() == {"detail": f"Incident #{three_steps.number} is resolved: "
                                         "nobody is paged about it."}
    assert pages(three_steps) == [("ann", 0, 0)]


def test_escalating_without_any_policy_is_409(inline, clock, service, rita):
    incident = open_incident(inline, service)

    response = inline(escalate, rita, incident.pk)

    assert response.status_code == 409
    assert response.json() == {"detail": f"Incident #{incident.number} has no escalation "
                                         "policy (nor has its service): page someone by "
                                         "hand instead."}
    assert not Escalation.objects.exists()


def test_escalating_with_a_policy_without_steps_is_409(inline, clock, service, team, rita):
    service.escalation_policy = make_policy(team)
    service.save()
    incident = open_incident(inline, service)
    assert escalation_of(incident).status == "skipped"

    response = inline(escalate, rita, incident.pk)

    assert response.status_code == 409
    assert response.json() == {"detail": f"The escalation policy of incident "
                                         f"#{incident.number} has no steps: page someone "
                                         "by hand instead."}
    assert pages(incident) == []


def test_escalating_needs_the_right_to_page_someone(three_steps, inline):
    staff_without_a_role = make_user("sam")

    assert inline(escalate, staff_without_a_role, three_steps.pk).status_code == 403
    assert inline(escalate, None, three_steps.pk).status_code == 401
    assert pages(three_steps) == [("ann", 0, 0)]


def test_escalating_an_unknown_incident_is_404(db, rita):
    assert escalate(rita, 999_999).status_code == 404


# --- assignees and acknowledged_by --------------------------------------------------------

def people(body) -> list[dict]:
    return sorted(body["assignees"], key=lambda person: person["id"])


def test_assignees_are_whom_the_latest_step_paged_plus_whoever_was_paged_by_hand(
        inline, clock, service, team, rita):
    ann, bob, cid, dan = person("ann"), person("bob"), person("cid"), person("dan")
    service.escalation_policy = make_policy(team, step(5, ann, bob), step(5, cid))
    service.save()
    incident = open_incident(inline, service)
    detail = f"/api/v1/incidents/{incident.pk}/"
    api = api_client_for(rita)
    assert people(api.get(detail).json()) == [{"id": ann.pk, "username": "ann"},
                                              {"id": bob.pk, "username": "bob"}]

    run_when_due(clock, inline, incident)
    assert people(api.get(detail).json()) == [{"id": cid.pk, "username": "cid"}]

    response = inline(api.post, f"{detail}pages/", {"user": dan.pk}, format="json")
    assert response.status_code == 201
    expected = [{"id": cid.pk, "username": "cid"}, {"id": dan.pk, "username": "dan"}]
    assert people(api.get(detail).json()) == expected
    [listed] = api.get("/api/v1/incidents/").json()["results"]
    assert people(listed) == expected


def test_acknowledged_by_is_in_the_incidents_api(three_steps, rita):
    api = api_client_for(rita)
    assert api.get(f"/api/v1/incidents/{three_steps.pk}/").json()["acknowledged_by"] is None

    body = api.post(f"/api/v1/incidents/{three_steps.pk}/acknowledge/").json()

    assert body["acknowledged_by"] == {"id": rita.pk, "username": "rita"}


def test_escalating_a_drill_by_hand_pages_that_step_only(inline, clock, service, team, rita):
    ann, bob = person("ann"), person("bob")
    service.escalation_policy = make_policy(team, step(5, ann), step(5, bob))
    service.save()
    drill = open_incident(inline, service, drill=True)

    assert inline(escalate, rita, drill.pk).status_code == 200

    # The policy does not page drills: the responder's step runs, and nothing follows by
    # itself.
    row = escalation_of(drill)
    assert (row.status, row.next_due_at) == ("skipped", None)
    clock.advance(hours=1)
    assert inline(escalation.run_due) == 0
    assert pages(drill) == [("ann", 0, 0)]


def test_exhausting_after_an_escalation_by_hand_counts_the_rounds_that_ran(
        inline, clock, service, team, rita):
    ann = person("ann")
    service.escalation_policy = make_policy(team, step(5, ann))
    service.save()
    incident = open_incident(inline, service)
    run_when_due(clock, inline, incident)
    inline(escalate, rita, incident.pk)

    run_when_due(clock, inline, incident)

    assert escalation_of(incident).status == "exhausted"
    assert timeline(incident, "escalation")[-1] == (
        "Escalation exhausted: every step of Checkout on call ran 2 times and nobody "
        "acknowledged")


def test_steps_added_to_an_empty_policy_count_when_someone_escalates_by_hand(
        inline, clock, service, team, rita):
    policy = make_policy(team)
    service.escalation_policy = policy
    service.save()
    incident = open_incident(inline, service)
    assert escalation_of(incident).status == "skipped"
    from_now_on = policy.steps.create(position=0, delay_minutes=5)
    from_now_on.targets.create(user=person("bob"))

    assert inline(escalate, rita, incident.pk).status_code == 200

    assert pages(incident) == [("bob", 0, 0)]


def test_an_escalation_by_hand_names_who_asked_in_the_timeline_and_the_email(
        three_steps, inline, rita, portal_settings):
    inline(escalate, rita, three_steps.pk)

    entry = three_steps.timeline.get(kind="escalation", data__key="policy:0:1")
    assert entry.actor == rita
    [email] = escalation_emails()
    assert "By: rita" in email.body


def test_escalate_with_the_steps_run_seen_runs_one_step_when_sent_twice(three_steps, inline,
                                                                         rita):
    api = api_client_for(rita)
    url = f"/api/v1/incidents/{three_steps.pk}/escalate/"
    seen = escalation_of(three_steps).steps_run

    first = inline(api.post, url, {"steps_run": seen}, format="json")
    second = inline(api.post, url, {"steps_run": seen}, format="json")

    assert first.status_code == 200 and first.json()["steps_run"] == seen + 1
    assert second.status_code == 409
    assert "A step ran since this page was shown" in second.json()["detail"]
    assert pages(three_steps) == [("ann", 0, 0), ("bob", 1, 0)]


@pytest.mark.parametrize("body", [{"steps_run": -1}, {"steps_run": "two"}, [1]])
def test_escalate_with_a_malformed_body_is_400_and_runs_nothing(three_steps, inline, rita,
                                                                  body):
    response = inline(api_client_for(rita).post,
                      f"/api/v1/incidents/{three_steps.pk}/escalate/", body, format="json")

    assert response.status_code == 400
    assert response.json()
    assert pages(three_steps) == [("ann", 0, 0)]


def test_escalating_an_incident_resolved_meanwhile_pages_nobody(three_steps, inline, rita):
    # The button's request read the incident while it was open; it is resolved before
    # the step takes the incident's lock.
    lifecycle.resolve(Incident.objects.get(pk=three_steps.pk))
    assert three_steps.is_open

    with pytest.raises(escalation.NoEscalation, match="is resolved"):
        inline(escalation.escalate_now, three_steps, actor=rita)

    assert pages(three_steps) == [("ann", 0, 0)]
