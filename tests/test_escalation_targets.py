"""Whom a step pages: every active member of a team, each person once however many targets
name them, whoever a schedule has on call at the step's instant (its fallback user
included), and a timeline entry, not silence, when a target gives nobody."""

from datetime import time, timedelta

import pytest

from oncall.models import Override, Rotation, Schedule
from tests.escalation_helpers import (  # noqa: F401 (fixture clock)
    escalation_of,
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


def always_on_call(schedule, user) -> Rotation:
    """A weekly rotation of one person, started a week ago: them, at any instant."""
    started = schedule.created_at - timedelta(days=7)
    return Rotation.objects.create(schedule=schedule, name="Weeks", shift_kind="weekly",
                                   handoff_date=started.date(), handoff_time=time(0, 0),
                                   participants=[user.pk])


def test_a_team_pages_every_active_member_and_a_person_named_twice_once(
        inline, clock, service, team):
    ann, bob, cid = person("ann"), person("bob"), person("cid")
    cid.is_active = False
    cid.save()
    team.members.add(ann, bob, cid)
    service.escalation_policy = make_policy(team, step(5, team, ann, bob))
    service.save()

    incident = open_incident(inline, service)

    assert sorted(pages(incident)) == [("ann", 0, 0), ("bob", 0, 0)]
    assert set(incident.assignees.values_list("username", flat=True)) == {"ann", "bob"}


def test_a_schedule_pages_whoever_is_on_call_when_the_step_runs(inline, clock, service, team):
    ann, bob, max_ = person("ann"), person("bob"), person("max")
    schedule = Schedule.objects.create(name="Primary", team=team, time_zone="Europe/Berlin")
    always_on_call(schedule, ann)
    service.escalation_policy = make_policy(team, step(5, schedule), step(5, max_),
                                            step(5, schedule))
    service.save()
    incident = open_incident(inline, service)
    assert pages(incident) == [("ann", 0, 0)]

    # Between the steps, bob takes over from now on: step 3 finds him, not ann.
    Override.objects.create(schedule=schedule, user=bob, start=clock.now() + timedelta(
        minutes=1), end=clock.now() + timedelta(hours=8))
    run_when_due(clock, inline, incident)
    run_when_due(clock, inline, incident)

    assert pages(incident) == [("ann", 0, 0), ("max", 1, 0), ("bob", 2, 0)]


def test_a_schedule_with_nobody_on_call_says_so_and_the_escalation_moves_on(
        inline, clock, service, team):
    max_ = person("max")
    empty = Schedule.objects.create(name="Nights", team=team, time_zone="UTC")
    service.escalation_policy = make_policy(team, step(5, empty), step(5, max_))
    service.save()

    incident = open_incident(inline, service)

    assert pages(incident) == []
    assert timeline(incident, "escalation") == [
        "Schedule Nights has nobody on call and no fallback user (step 1 of 2 of Checkout "
        "on call)",
        "Nobody was paged for step 1 of 2 of Checkout on call: no target had anyone to page",
    ]
    row = escalation_of(incident)
    assert (row.status, row.next_step, row.steps_run) == ("active", 1, 1)
    assert row.next_due_at == clock.now() + timedelta(minutes=5)
    run_when_due(clock, inline, incident)
    assert pages(incident) == [("max", 1, 0)]


def test_a_schedule_with_nobody_on_call_pages_its_fallback_user(inline, clock, service, team):
    fay = person("fay")
    nights = Schedule.objects.create(name="Nights", team=team, time_zone="UTC",
                                     fallback_user=fay)
    service.escalation_policy = make_policy(team, step(5, nights))
    service.save()

    incident = open_incident(inline, service)

    assert pages(incident) == [("fay", 0, 0)]
    assert not any("nobody on call" in entry for entry in timeline(incident))


def test_one_person_on_call_and_named_as_a_user_in_one_step_is_paged_once(
        inline, clock, service, team):
    ann = person("ann")
    schedule = Schedule.objects.create(name="Primary", team=team, time_zone="UTC")
    always_on_call(schedule, ann)
    team.members.add(ann)
    service.escalation_policy = make_policy(team, step(5, schedule, ann, team))
    service.save()

    incident = open_incident(inline, service)

    assert pages(incident) == [("ann", 0, 0)]
    assert len([e for e in timeline(incident, "page") if e.startswith("Paged Ann")]) == 1


def test_a_deactivated_user_target_is_skipped_with_a_timeline_entry(inline, clock, service,
                                                                    team):
    ann, bob = person("ann"), person("bob")
    service.escalation_policy = make_policy(team, step(5, ann, bob))
    service.save()
    bob.is_active = False
    bob.save()

    incident = open_incident(inline, service)

    assert pages(incident) == [("ann", 0, 0)]
    assert "1 deactivated or deleted user(s) skipped (step 1 of 1 of Checkout on call)" in \
        timeline(incident, "escalation")


def test_a_schedule_deleted_after_the_policy_changed_is_named_on_the_timeline(
        inline, clock, service, team):
    ann = person("ann")
    nights = Schedule.objects.create(name="Nights", team=team, time_zone="UTC",
                                     fallback_user=ann)
    policy = make_policy(team, step(5, ann), step(5, nights))
    service.escalation_policy = policy
    service.save()
    incident = open_incident(inline, service)
    # The running escalation still holds the schedule in its snapshot; the policy no
    # longer does, so the schedule may go.
    policy.steps.all().delete()
    schedule_id = nights.pk
    nights.delete()

    run_when_due(clock, inline, incident)

    assert pages(incident) == [("ann", 0, 0)]
    assert f"Schedule {schedule_id} no longer exists (step 2 of 2 of Checkout on call)" in \
        timeline(incident, "escalation")
    assert escalation_of(incident).next_step == 2
