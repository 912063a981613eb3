"""One due step asked for by several workers at once (timer sweeps, queue tasks, the
escalate button), on PostgreSQL: it runs once and pages each person once."""

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from incidents import lifecycle
from incidents.models import Incident
from oncall import escalation
from oncall.models import Escalation, Page, PersonalNotification
from tests.escalation_helpers import make_policy, person, step
from tests.parallel import in_parallel

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture(autouse=True)
def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("parallel workers are tested on PostgreSQL (set DATABASE_URL)")


@pytest.fixture(autouse=True)
def no_queue(monkeypatch):
    # The tests decide who runs the step: tasks queued after commits go nowhere.
    monkeypatch.setattr("tocsin.taskqueue.async_task", lambda *args, **kwargs: None)
    monkeypatch.setattr("tocsin.taskqueue.schedule", lambda *args, **kwargs: None)


@pytest.fixture
def due(service, team):
    """An incident whose step 2 (max) is due now; step 1 has paged rita."""
    service.escalation_policy = make_policy(team, step(5, person("rita")),
                                            step(5, person("max")))
    service.save()
    incident = lifecycle.open_incident(service=service, title="Disk full", entity_id="db-1")
    assert escalation.run_step(incident.pk).startswith("ran step 1")
    Escalation.objects.filter(pk=incident.pk).update(
        next_due_at=timezone.now() - timedelta(seconds=1))
    return incident


def step_pages(incident) -> Counter:
    return Counter(Page.objects.filter(incident=incident)
                   .values_list("user__username", "step", "loop"))


def test_parallel_runs_of_one_due_step_run_it_once(due):
    results = in_parallel(escalation.run_step, due.pk)

    assert [r for r in results if r.startswith("ran")] == [
        "ran step 2 of 2 of Checkout on call, paged 1"]
    assert step_pages(due) == {("rita", 0, 0): 1, ("max", 1, 0): 1}
    assert Escalation.objects.get(pk=due.pk).steps_run == 2
    assert due.timeline.filter(kind="escalation").count() == 1


def test_parallel_timer_sweeps_run_one_due_step_once(due):
    results = in_parallel(escalation.run_due)

    assert sum(results) == 1
    assert step_pages(due) == {("rita", 0, 0): 1, ("max", 1, 0): 1}


def race(*functions) -> list:
    """Each function in its own thread, all released together; their results, in order."""
    handed_out = iter(enumerate(functions))
    lock = threading.Lock()
    results = [None] * len(functions)

    def worker():
        with lock:
            index, function = next(handed_out)
        results[index] = function()

    in_parallel(worker, workers=len(functions))
    return results


def test_a_timer_run_and_an_escalate_at_once_never_page_for_one_step_twice(due):
    """Whoever locks first runs step 2; the other finds it done (the timer) or runs the
    next one (the button: past the last step, step 1 again in the next loop)."""
    swept, escalated = race(
        escalation.run_due,
        lambda: escalation.escalate_now(Incident.objects.get(pk=due.pk)))

    assert escalated.startswith("ran step")
    assert Escalation.objects.get(pk=due.pk).steps_run == 2 + swept
    assert set(step_pages(due).values()) == {1}
    assert step_pages(due)[("max", 1, 0)] == 1


def test_an_acknowledgement_racing_a_due_step_either_wins_or_comes_second(due):
    """The step and the acknowledgement both lock the incident first: no deadlock, and a
    step that comes second pages nobody."""
    stepped, acknowledged = race(
        lambda: escalation.run_step(due.pk),
        lambda: lifecycle.acknowledge(Incident.objects.get(pk=due.pk)))

    assert acknowledged is True
    row = Escalation.objects.get(pk=due.pk)
    assert (row.status, row.next_due_at) == ("stopped", None)
    if stepped.startswith("ran"):
        assert step_pages(due)[("max", 1, 0)] == 1
    else:
        assert stepped == "not due" and ("max", 1, 0) not in step_pages(due)
    # Whichever came first, nothing is left to send: the step's messages (queued nowhere
    # here) are cancelled with the rest, even when the acknowledgement waited for the step.
    assert not PersonalNotification.objects.filter(incident=due, status="pending").exists()


def test_many_rounds_of_timer_and_button_races_keep_every_step_paged_once(service, team):
    service.escalation_policy = make_policy(team, step(5, person("rita")),
                                            step(5, person("max")), repeat=9)
    service.save()
    incident = lifecycle.open_incident(service=service, title="Disk full", entity_id="db-1")
    for _ in range(10):
        Escalation.objects.filter(pk=incident.pk).update(next_due_at=timezone.now())
        race(escalation.run_due, escalation.run_due,
             lambda: escalation.escalate_now(Incident.objects.get(pk=incident.pk)))

    assert set(step_pages(incident).values()) == {1}
    assert Page.objects.filter(incident=incident).count() == \
        Escalation.objects.get(pk=incident.pk).steps_run
