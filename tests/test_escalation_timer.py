"""The minute job "Run due escalation steps" (oncall.escalation.run_due_escalations): it runs
what is due, waits (on a frozen clock its fake sleep moves) for steps and page messages
falling due within its window and sends them on time, and returns at once when nothing
does."""

from datetime import time, timedelta

import pytest
from django.core import mail
from django.core.cache import cache

from oncall import escalation
from oncall.models import PersonalNotification, Rotation, Schedule
from tests.escalation_helpers import (  # noqa: F401 (fixture clock)
    contact,
    escalation_of,
    frozen_clock,
    make_policy,
    open_incident,
    pages,
    person,
    step,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting(inline, clock, service, team):
    """Step 1 has paged rita; step 2 (max) falls due in 5 minutes."""
    service.escalation_policy = make_policy(team, step(5, person("rita")),
                                            step(5, person("max")))
    service.save()
    return open_incident(inline, service)


def timer(inline, clock, seconds=55):
    return inline(escalation.run_due_escalations, seconds=seconds, sleep=clock.sleep)


def test_the_timer_runs_a_due_step_and_returns_when_nothing_else_falls_due(waiting, clock,
                                                                           inline):
    clock.to(escalation_of(waiting).next_due_at + timedelta(seconds=3))

    assert timer(inline, clock) == 1

    assert pages(waiting) == [("rita", 0, 0), ("max", 1, 0)]
    assert clock.slept == []


def test_the_timer_waits_for_a_step_due_within_its_window_and_runs_it_on_time(
        waiting, clock, inline):
    due = escalation_of(waiting).next_due_at
    clock.to(due - timedelta(seconds=25))

    assert timer(inline, clock) == 1

    # It looks again at least every 10 s (a page made meanwhile may fall due sooner).
    assert clock.slept == [10, 10, 5]
    assert waiting.pages.get(user__username="max").created_at == due


def test_the_timer_returns_at_once_when_nothing_falls_due_within_its_window(waiting, clock,
                                                                            inline):
    clock.to(escalation_of(waiting).next_due_at - timedelta(seconds=56))

    assert timer(inline, clock) == 0

    assert clock.slept == []
    assert pages(waiting) == [("rita", 0, 0)]


def test_an_idle_portal_returns_at_once(db, clock, inline):
    assert timer(inline, clock) == 0
    assert clock.slept == []


def test_the_timer_sends_a_page_message_falling_due_while_it_waits(inline, clock, service,
                                                                   team):
    rita = person("rita")
    contact(rita, "email", "rita.work@example.com", 1)
    service.escalation_policy = make_policy(team, step(5, rita))
    service.save()
    incident = open_incident(inline, service)
    message = PersonalNotification.objects.get(incident=incident)
    assert message.status == "pending" and mail.outbox == []
    clock.advance(seconds=20)

    assert timer(inline, clock) == 0

    assert sum(clock.slept) == 40
    message.refresh_from_db()
    assert (message.status, message.sent_at) == ("sent", incident.created_at
                                                 + timedelta(minutes=1))
    assert [m.to for m in mail.outbox] == [["rita.work@example.com"]]


def test_queue_due_messages_queues_only_pending_unclaimed_messages_due_since_the_last_look(
        inline, clock, service, team, monkeypatch):
    rita = person("rita")
    for delay in (1, 2, 3, 4):
        contact(rita, "email", f"rita.{delay}@example.com", delay)
    service.escalation_policy = make_policy(team, step(30, rita))
    service.save()
    incident = open_incident(inline, service)
    rows = {row.delay_minutes: row for row in PersonalNotification.objects.filter(
        incident=incident)}
    rows[3].claimed_until = clock.now() + timedelta(minutes=10)
    rows[3].save()
    PersonalNotification.objects.filter(pk=rows[4].pk).update(status="cancelled")
    queued = []
    monkeypatch.setattr("tocsin.taskqueue.enqueue",
                        lambda func, pk, **kwargs: queued.append((func, pk)))
    since = incident.created_at + timedelta(seconds=90)
    clock.advance(minutes=5)

    # 1 min fell due before the last look, 3 is being sent by a worker, 4 is cancelled.
    assert escalation.queue_due_messages(since, clock.now()) == 1

    assert queued == [("oncall.sending.send_personal_notification", rows[2].pk)]


def test_a_failing_step_is_retried_every_30_seconds_and_says_why_instead_of_spinning(
        inline, clock, service, team, caplog):
    """Regression: an active escalation already past due (one whose step raised) counted as
    "falling due within the window", so the timer slept 0 s and retried it, logging the
    traceback each time, for its whole window."""
    schedule = Schedule.objects.create(name="Primary", team=team, time_zone="UTC")
    Rotation.objects.create(schedule=schedule, name="Weeks", shift_kind="weekly",
                            handoff_date=(clock.now() - timedelta(days=7)).date(),
                            handoff_time=time(0, 0), participants=[person("ann").pk])
    # A zone the database still holds but this Python's tzdata no longer knows.
    Schedule.objects.filter(pk=schedule.pk).update(time_zone="Mars/Olympus_Mons")
    service.escalation_policy = make_policy(team, step(5, schedule))
    service.save()
    incident = open_incident(inline, service)
    clock.advance(seconds=1)
    started = clock.now()

    assert timer(inline, clock) == 0

    # Tried at once, then 30 s later (looking every 10 s); the next try is past the
    # 55-second window, left to the next run.
    assert clock.slept == [10, 10, 10]
    assert caplog.text.count(f"Escalation of incident {incident.pk} failed") == 2
    row = escalation_of(incident)
    assert (row.status, row.steps_run) == ("active", 0)
    assert row.next_due_at == started + timedelta(seconds=60)
    assert row.note.startswith("The step failed and is tried again every 30 s: ")


def test_a_run_leaves_the_waiting_to_a_later_run(waiting, clock, inline):
    """Two runs of the minute job overlap for a moment: the earlier one stops waiting as
    soon as it sees a later one waiting, so two workers are not held asleep."""
    clock.to(escalation_of(waiting).next_due_at - timedelta(seconds=25))
    cache.set(escalation.WAITING_RUN_KEY, clock.now().timestamp() + 30)

    assert timer(inline, clock) == 0

    assert clock.slept == []
    assert pages(waiting) == [("rita", 0, 0)]  # step 2 is the later run's


def test_a_run_that_waits_says_so_for_later_runs(waiting, clock, inline):
    clock.to(escalation_of(waiting).next_due_at - timedelta(seconds=25))
    cache.set(escalation.WAITING_RUN_KEY, clock.now().timestamp() - 60)
    started = clock.now().timestamp()

    assert timer(inline, clock) == 1

    assert clock.slept == [10, 10, 5]
    assert cache.get(escalation.WAITING_RUN_KEY) == started


def test_a_cluster_with_one_worker_never_waits_in_the_timer(waiting, clock, inline, settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "workers": 1}
    clock.to(escalation_of(waiting).next_due_at - timedelta(seconds=25))

    assert timer(inline, clock) == 0

    assert clock.slept == []
