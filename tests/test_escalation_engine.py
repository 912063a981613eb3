"""Running escalation policies (oncall/escalation.py): step 1 at once, each next step after
the step's own delay, repeats, exhaustion, the policy's snapshot, which policy applies,
drills, and rules of a disabled contact method. Tasks run inline as a worker would; time
is a frozen clock the tests move."""

from datetime import timedelta

import pytest
from django.core import mail
from django.db import IntegrityError, transaction

from incidents.models import Incident
from integrations.models import AlertRule
from oncall import escalation
from oncall.models import Escalation, EscalationStep, Page, PersonalNotification
from tests.conftest import api_client_for, make_user
from tests.escalation_helpers import (  # noqa: F401 (fixtures clock, portal_settings)
    contact,
    escalation_emails,
    escalation_of,
    escalations_emailed,
    frozen_clock,
    inbox,
    make_policy,
    open_incident,
    pages,
    person,
    run_when_due,
    step,
    timeline,
)
from tests.ingest_helpers import post_event, run_tasks  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def rita(db):
    return person("rita")


@pytest.fixture
def max_(db):
    return person("max")


# --- steps and their delays ---------------------------------------------------------------

def test_a_triggered_incident_pages_step_one_at_once(inline, deliver_inline, clock, service,
                                                     team, rita, max_):
    service.escalation_policy = make_policy(team, step(5, rita), step(10, max_))
    service.save()

    incident = open_incident(inline, service)

    assert pages(incident) == [("rita", 0, 0)]
    assert "Paged Rita: step 1 of 2 of Checkout on call (email to the account address at " \
        "once)" in timeline(incident, "page")
    assert [m.to for m in inbox("rita@example.com")] == [["rita@example.com"]]
    row = escalation_of(incident)
    assert (row.status, row.next_step, row.loop, row.steps_run) == ("active", 1, 0, 1)
    assert row.next_due_at == clock.now() + timedelta(minutes=5)
    # The next step has its one-off task at its due time.
    assert (incident.pk, row.next_due_at) in deliver_inline


def test_step_two_runs_after_step_ones_delay_and_not_a_second_before(inline, clock, service,
                                                                     team, rita, max_):
    service.escalation_policy = make_policy(team, step(5, rita), step(10, max_))
    service.save()
    incident = open_incident(inline, service)

    clock.advance(minutes=4, seconds=59)
    assert inline(escalation.run_step, incident.pk) == "not due"
    assert inline(escalation.run_due) == 0
    assert pages(incident) == [("rita", 0, 0)]

    clock.advance(seconds=1)
    assert inline(escalation.run_due) == 1
    assert pages(incident) == [("rita", 0, 0), ("max", 1, 0)]
    assert inbox("max@example.com")
    # And the step after waits for step 2's own delay, not step 1's.
    assert escalation_of(incident).next_due_at == clock.now() + timedelta(minutes=10)


def test_each_step_waits_its_own_delay_then_the_escalation_is_exhausted(
        inline, clock, service, team, rita, max_):
    sam = person("sam")
    service.escalation_policy = make_policy(team, step(2, rita), step(7, max_), step(3, sam))
    service.save()
    incident = open_incident(inline, service)
    started = clock.now()

    while escalation_of(incident).status == "active":
        run_when_due(clock, inline, incident)

    times = {page.user.username: page.created_at - started for page in incident.pages.all()}
    assert times == {"rita": timedelta(0), "max": timedelta(minutes=2),
                     "sam": timedelta(minutes=9)}
    exhausted = incident.timeline.get(message__startswith="Escalation exhausted")
    assert exhausted.created_at - started == timedelta(minutes=12)


def test_a_step_not_yet_due_does_nothing_however_often_it_is_asked(inline, clock, service,
                                                                   team, rita, max_):
    service.escalation_policy = make_policy(team, step(5, rita), step(5, max_))
    service.save()
    incident = open_incident(inline, service)
    before = escalation_of(incident)

    for _ in range(3):
        assert inline(escalation.run_escalation, incident.pk) == "not due"
        assert inline(escalation.run_due) == 0

    after = escalation_of(incident)
    assert (after.next_step, after.steps_run, after.next_due_at) == (
        before.next_step, before.steps_run, before.next_due_at)
    assert pages(incident) == [("rita", 0, 0)]


# --- repeats and exhaustion ---------------------------------------------------------------

@pytest.mark.parametrize("repeat", [0, 1, 2])
def test_repeat_runs_the_steps_repeat_plus_one_times_then_exhausts_once(
        inline, clock, service, team, rita, max_, portal_settings, repeat):
    service.escalation_policy = make_policy(team, step(5, rita), step(10, max_),
                                            repeat=repeat)
    service.save()
    incident = open_incident(inline, service)

    while escalation_of(incident).status == "active":
        last_step = escalation_of(incident).last_step_at
        run_when_due(clock, inline, incident)

    runs = repeat + 1
    assert pages(incident) == [("rita", 0, loop) if s == 0 else ("max", 1, loop)
                               for loop in range(runs) for s in (0, 1)]
    row = escalation_of(incident)
    assert (row.status, row.steps_run, row.next_due_at) == ("exhausted", 2 * runs, None)
    # Exhausted once the last step's own delay (10 minutes) has passed.
    assert clock.now() - last_step == timedelta(minutes=10)
    [exhausted] = [m for m in timeline(incident) if m.startswith("Escalation exhausted")]
    assert exhausted == (f"Escalation exhausted: every step of Checkout on call ran {runs} "
                         f"time{'s' if runs > 1 else ''} and nobody acknowledged")
    emails = escalation_emails()
    assert len([m for m in emails if "Escalation exhausted" in m.subject]) == 1
    # Every step but the very first is an escalation too.
    assert len(emails) == 2 * runs - 1 + 1
    assert all(m.to == ["ops@example.com"] for m in emails)

    clock.advance(hours=2)
    assert inline(escalation.run_due) == 0
    assert len(escalation_emails()) == len(emails)


def test_step_two_is_an_escalation_on_the_timeline_and_in_the_escalations_email(
        inline, clock, service, team, rita, max_, portal_settings):
    service.escalation_policy = make_policy(team, step(5, rita), step(5, max_))
    service.save()
    incident = open_incident(inline, service)
    assert escalation_emails() == [] and timeline(incident, "escalation") == []

    run_when_due(clock, inline, incident)

    assert timeline(incident, "escalation") == [
        "Escalated to step 2 of 2 of Checkout on call: paging Max"]
    [email] = escalation_emails()
    assert email.subject == (f"[Tocsin] Escalation on incident #{incident.number}: "
                             "Escalated to step 2 of 2 of Checkout on call: paging Max")


# --- the policy's snapshot ----------------------------------------------------------------

def test_a_policy_edited_through_the_api_mid_incident_leaves_the_running_one_alone(
        inline, clock, service, team, rita, max_):
    carl = person("carl")
    manager = make_user("mona", "Manager")
    policy = make_policy(team, step(5, rita), step(5, max_))
    service.escalation_policy = policy
    service.save()
    running = open_incident(inline, service)

    response = api_client_for(manager).put(
        f"/api/v1/escalation-policies/{policy.pk}/",
        {"name": "Checkout on call", "team": team.pk, "repeat": 0,
         "steps": [{"delay_minutes": 60, "targets": [{"user": carl.pk}]}]}, format="json")
    assert response.status_code == 200, response.content

    assert run_when_due(clock, inline, running) == 1
    assert pages(running) == [("rita", 0, 0), ("max", 1, 0)]
    later = open_incident(inline, service, entity_id="db-2")
    assert pages(later) == [("carl", 0, 0)]
    assert escalation_of(later).next_due_at == clock.now() + timedelta(minutes=60)


def test_a_delay_or_target_changed_mid_incident_applies_to_later_incidents_only(
        inline, clock, service, team, rita, max_):
    carl = person("carl")
    policy = make_policy(team, step(5, rita), step(5, max_))
    service.escalation_policy = policy
    service.save()
    running = open_incident(inline, service)
    due = escalation_of(running).next_due_at

    EscalationStep.objects.filter(policy=policy).update(delay_minutes=30)
    second = EscalationStep.objects.get(policy=policy, position=1)
    second.targets.update(user=carl)

    assert escalation_of(running).next_due_at == due
    run_when_due(clock, inline, running)
    assert pages(running) == [("rita", 0, 0), ("max", 1, 0)]
    later = open_incident(inline, service, entity_id="db-2")
    assert escalation_of(later).next_due_at == clock.now() + timedelta(minutes=30)
    run_when_due(clock, inline, later)
    assert pages(later) == [("rita", 0, 0), ("carl", 1, 0)]


# --- which policy -------------------------------------------------------------------------

@pytest.fixture
def post_alert(client, integration, inline, run_tasks,  # noqa: F811
               django_capture_on_commit_callbacks):
    """POST an alert to the generic webhook and process it as the worker would, with the
    tasks it queues (the escalation's step, page messages) run inline too."""
    def post(body):
        response = post_event(client, integration, body,
                              capture=django_capture_on_commit_callbacks)
        assert response.status_code == 200, response.content
    return post


def test_the_alerts_escalation_policy_overrides_the_services(post_alert, clock, service,
                                                             team, rita, max_):
    service.escalation_policy = make_policy(team, step(5, rita), name="Service's")
    service.save()
    alerts = make_policy(team, step(5, max_), name="Alert's")

    post_alert({"message": "Disk full", "alert_type": "critical", "entity_id": "db-1",
                "escalation_policy": alerts.pk})

    incident = Incident.objects.get(entity_id="db-1")
    assert incident.escalation_policy == alerts
    assert pages(incident) == [("max", 0, 0)]
    assert escalation_of(incident).plan["name"] == "Alert's"


def test_a_rule_routing_to_a_policy_overrides_the_services(post_alert, clock, integration,
                                                           service, team, rita, max_):
    service.escalation_policy = make_policy(team, step(5, rita), name="Service's")
    service.save()
    dba = make_policy(team, step(5, max_), name="DBA")
    AlertRule.objects.create(integration=integration, name="Disks to the DBA",
                             conditions=[{"field": "message", "op": "contains",
                                          "value": "Disk"}],
                             actions=[{"type": "route_escalation_policy", "value": dba.pk}])

    post_alert({"message": "Disk full", "alert_type": "critical", "entity_id": "db-1"})

    incident = Incident.objects.get(entity_id="db-1")
    assert pages(incident) == [("max", 0, 0)]


def test_without_a_policy_anywhere_nothing_escalates_and_nobody_is_paged(
        post_alert, clock, service, rita):
    post_alert({"message": "Disk full", "alert_type": "critical", "entity_id": "db-1"})

    incident = Incident.objects.get(entity_id="db-1")
    assert not Escalation.objects.filter(pk=incident.pk).exists()
    assert pages(incident) == [] and mail.outbox == []
    clock.advance(hours=1)
    assert escalation.run_due() == 0


# --- drills and suppressed alerts ---------------------------------------------------------

def test_a_drill_pages_nobody_unless_the_policy_pages_drills(inline, clock, service, team,
                                                             rita, max_):
    service.escalation_policy = make_policy(team, step(5, rita), step(5, max_))
    service.save()

    drill = open_incident(inline, service, drill=True)

    row = escalation_of(drill)
    assert (row.status, row.next_due_at, row.steps_run) == ("skipped", None, 0)
    assert timeline(drill, "escalation") == [
        "Nobody paged automatically. Drill: policy Checkout on call does not page people "
        "for drills."]
    clock.advance(hours=1)
    assert inline(escalation.run_due) == 0
    assert pages(drill) == [] and mail.outbox == []


def test_a_policy_that_pages_drills_pages_for_a_drill(inline, clock, service, team, rita):
    service.escalation_policy = make_policy(team, step(5, rita), page_drills=True)
    service.save()

    drill = open_incident(inline, service, drill=True)

    assert pages(drill) == [("rita", 0, 0)]
    [message] = inbox("rita@example.com")
    assert "[DRILL]" in message.subject


def test_a_suppressed_alert_opens_nothing_and_pages_nobody(post_alert, clock, service, team,
                                                           rita):
    service.escalation_policy = make_policy(team, step(5, rita))
    service.save()

    post_alert({"message": "Disk full", "alert_type": "critical", "entity_id": "db-1",
                "suppressed": True})

    assert not Incident.objects.exists() and not Escalation.objects.exists()
    assert mail.outbox == []


# --- a disabled contact method ------------------------------------------------------------

def test_a_disabled_contact_methods_rule_is_skipped_and_the_timeline_says_so(
        inline, clock, twilio, service, team, rita):
    contact(rita, "sms", "+4915112345678", 0, enabled=False)
    contact(rita, "email", "rita.work@example.com", 0)
    service.escalation_policy = make_policy(team, step(5, rita))
    service.save()

    incident = open_incident(inline, service)

    assert "Not sent to Rita: SMS at once: the contact method is disabled" in \
        timeline(incident, "page")
    [row] = PersonalNotification.objects.filter(incident=incident)
    assert (row.kind, row.status) == ("email", "sent")
    assert [m.to for m in mail.outbox] == [["rita.work@example.com"]]
    assert twilio.requests == []


def test_an_enabled_sms_rule_of_a_step_reaches_twilio(inline, clock, twilio, service, team,
                                                      rita):
    contact(rita, "sms", "+4915112345678", 0)
    service.escalation_policy = make_policy(team, step(5, rita))
    service.save()

    incident = open_incident(inline, service)

    [request] = twilio.requests
    assert request.form["To"] == "+4915112345678"
    assert request.form["Body"].startswith(f"#{incident.number} Disk full on db-1 Ack: ")


def test_the_database_refuses_a_second_page_of_one_person_for_one_step_run(
        inline, clock, service, team, rita):
    service.escalation_policy = make_policy(team, step(5, rita))
    service.save()
    incident = open_incident(inline, service)
    assert pages(incident) == [("rita", 0, 0)]

    with pytest.raises(IntegrityError), transaction.atomic():
        Page.objects.create(incident=incident, user=rita, step=0, loop=0)
    # Pages by hand carry no step: as many as people ask for.
    Page.objects.create(incident=incident, user=rita)
    Page.objects.create(incident=incident, user=rita)
