"""Running escalation policies (docs/escalation.md).

An incident that opens with a policy (its alert's, else its service's) gets an Escalation
row, due at once, in the transaction that opens it; after the commit a task runs step 1.
Running a step pages every target user (sending.page_user), records the step on the
timeline, and moves the row on: the next step (or the first again while repeats remain)
is due after this step's delay. Once the last step's delay has passed with nobody
acknowledging, the escalation is exhausted. Acknowledging or resolving the incident, any
way, stops the row and cancels the page messages still waiting, in the same transaction.

Exactly once: every run locks the incident row, then the escalation row, and checks that
the step is still due before running it, all in one transaction. Two workers (the timer,
a task, the button) asking for the same step serialise on those locks and the second finds
nothing due; a worker killed half-way rolls back with its connection, and the step is due
again for the next. The locks are taken in the order the acknowledgement takes them
(incident, then escalation), so the two never deadlock.
"""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from incidents.escalations import escalate
from incidents.models import EscalationPolicy, Incident, Team, TimelineEntry
from oncall import sending, shifts
from oncall.messages import display_name
from oncall.models import Escalation, EscalationStep, PersonalNotification, Schedule
from tocsin import taskqueue
from tocsin.outbox import unclaimed

logger = logging.getLogger(__name__)
User = get_user_model()
Status = Escalation.Status

RUN_TASK = "oncall.escalation.run_escalation"
# The timer job (tocsin/jobs.py) starts every minute and waits, at most this long, for the
# steps and messages falling due meanwhile, so they run on time rather than at the next
# scheduler pass (django-q2's scheduler looks only every 30 s). Longer than the minute: the
# next run starts up to a scheduler pass late, and with 55 s a step falling due in the gap
# ran up to 7 s late (p99 in benchmarks/escalation.py); with 65 s the two overlap briefly
# and every step ran within 0.3 s.
TIMER_SECONDS = 65
# The cache key naming the timer run that waits (its start, as a timestamp).
WAITING_RUN_KEY = "oncall:escalation-timer:waiting-run"
# A step that raised is tried again after this long.
RETRY_FAILED_STEP_SECONDS = 30
# While waiting, it looks again at least this often: a page made meanwhile may add a
# message due sooner than anything it knew of.
TIMER_POLL_SECONDS = 10


class NoEscalation(Exception):
    """Why an incident cannot be escalated by hand (no policy, resolved)."""


# Starting -------------------------------------------------------------------------------

def policy_for(incident: Incident) -> EscalationPolicy | None:
    """The alert's (or rule's) policy, kept on the incident, else its service's."""
    if incident.escalation_policy_id:
        return incident.escalation_policy
    return incident.service.escalation_policy if incident.service.escalation_policy_id else None


def start(incident: Incident) -> Escalation | None:
    """An incident opened: record its escalation, due now; a task runs step 1 after the
    commit. One INSERT in the opening transaction: the policy is read (and snapshot) by
    the step, not by alert processing."""
    policy_id = incident.escalation_policy_id or incident.service.escalation_policy_id
    if policy_id is None:
        return None
    escalation = Escalation.objects.create(incident=incident, policy_id=policy_id,
                                           next_due_at=timezone.now())
    transaction.on_commit(lambda: queue_run(incident.pk))
    return escalation


def snapshot(policy: EscalationPolicy) -> dict:
    """The policy as the escalation will run it, whatever is edited later."""
    steps = EscalationStep.objects.filter(policy=policy).order_by("position", "id") \
        .prefetch_related("targets")
    return {
        "policy": policy.pk, "name": policy.name, "repeat": policy.repeat,
        "page_drills": policy.page_drills,
        "steps": [{"delay_minutes": step.delay_minutes,
                   "targets": [{target.kind: getattr(target, f"{target.kind}_id")}
                               for target in step.targets.all()]}
                  for step in steps],
    }


def paging_paused(incident: Incident, plan: dict) -> str:
    """Why nobody is paged automatically about this incident now, or "". The one place
    that decides it: maintenance windows will answer here too (docs/escalation.md)."""
    if incident.drill and not plan.get("page_drills"):
        return f"Drill: policy {plan['name']} does not page people for drills."
    if not plan["steps"]:
        return f"Policy {plan['name']} has no steps: nobody is paged."
    return ""


# Running a step -------------------------------------------------------------------------

def run_escalation(incident_id: int) -> str:
    """The queue task, the timer's and the sweeper's call: run the step if it is due."""
    return run_step(incident_id)


def run_step(incident_id: int, *, by_hand: bool = False, actor=None,
             expected_steps_run: int | None = None) -> str:
    """Run the incident's next step if it is due (``by_hand``: now, whatever its time;
    ``expected_steps_run``: only if no step ran since the person looked). Returns what
    happened, for the task log. Exactly once: see the module docstring."""
    now = timezone.now()
    with transaction.atomic():
        incident = (Incident.objects.select_for_update(of=("self",))
                    .select_related("service", "escalation_policy")
                    .filter(pk=incident_id).first())
        escalation = incident and (Escalation.objects.select_for_update(skip_locked=True)
                                   .filter(pk=incident_id).first())
        if escalation is None:
            return "no escalation, or another worker has it"
        if expected_steps_run is not None and escalation.steps_run != expected_steps_run:
            return "a step ran meanwhile"
        if not by_hand and (escalation.status != Status.ACTIVE or escalation.next_due_at is None
                            or escalation.next_due_at > now):
            return "not due"
        if incident.status == Incident.Status.RESOLVED and by_hand:
            # Resolved while the button's request waited for the lock.
            return "resolved"
        if not by_hand and incident.status != Incident.Status.TRIGGERED:
            stop(escalation, f"incident is {incident.status}")
            return "stopped"
        if escalation.plan is None or (by_hand and not escalation.steps_run
                                       and not escalation.steps and escalation.policy):
            # Copied when the first step runs, a moment after the incident opened; a
            # policy that had no steps then (so nothing ran) is read again when someone
            # escalates by hand: steps added since count.
            escalation.plan = snapshot(escalation.policy) if escalation.policy else \
                {"policy": None, "name": "(deleted)", "repeat": 0, "page_drills": False,
                 "steps": []}
        # Asked before every step that runs by itself, so a pause (a maintenance window,
        # next release) that begins between two steps stops the next one.
        paused = paging_paused(incident, escalation.plan)
        if paused and not by_hand:
            skip(escalation, incident, paused)
            return "skipped"
        return advance(escalation, incident, now=now, by_hand=by_hand, actor=actor)


def advance(escalation: Escalation, incident: Incident, *, now, by_hand: bool, actor) -> str:
    steps = escalation.steps
    if not steps:
        return "no steps"
    step, loop = escalation.next_step, escalation.loop
    if step >= len(steps):
        if not by_hand:
            exhaust(escalation, incident)
            return "exhausted"
        # Escalating by hand after the last step: the steps run once more from the first.
        step, loop = 0, loop + 1
    users, problems = step_users(steps[step], at=now)
    number = step + 1
    words = f"step {number} of {len(steps)} of {escalation.plan['name']}" + \
        (f", repeat {loop}" if loop else "")
    for problem in problems:
        # Only the first letter: str.capitalize() would lower-case the rest, the names of
        # schedules and teams among it ("Schedule nights has nobody on call").
        TimelineEntry.objects.create(
            incident=incident, kind=TimelineEntry.Kind.ESCALATION, actor=actor,
            message=f"{problem[:1].upper()}{problem[1:]} ({words})",
            data={"step": step, "loop": loop, "problem": True})
    if not users:
        TimelineEntry.objects.create(
            incident=incident, kind=TimelineEntry.Kind.ESCALATION, actor=actor,
            message=f"Nobody was paged for {words}: no target had anyone to page",
            data={"step": step, "loop": loop, "problem": True})
    if step or loop or by_hand:
        how = f"by {display_name(actor)}" if actor else ("by hand" if by_hand else "")
        escalate(incident, key=f"policy:{loop}:{step}", actor=actor,
                 reason=f"Escalated to {words}" + (f" {how}" if how else "")
                 + (f": paging {', '.join(display_name(u) for u in users)}" if users else ""))
    for user in users:
        sending.page_user(incident, user, step=step, loop=loop, reason=words)
    if users:
        incident.assignees.set(users)
    escalation.next_step, escalation.loop = following(step, loop, len(steps),
                                                      escalation.plan["repeat"])
    escalation.steps_run += 1
    escalation.last_step_at = now
    # Goes on by itself only for a triggered incident that may page automatically: a step
    # run by hand for a drill the policy does not page pages that step's people, no more.
    paused = paging_paused(incident, escalation.plan)
    still_triggered = incident.status == Incident.Status.TRIGGERED and not paused
    escalation.status = Status.ACTIVE if still_triggered else \
        Status.SKIPPED if paused else Status.STOPPED
    escalation.next_due_at = now + timedelta(minutes=steps[step]["delay_minutes"]) \
        if still_triggered else None
    escalation.note = paused[:255]
    escalation.save()
    if still_triggered:
        transaction.on_commit(lambda: schedule_run(incident.pk, escalation.next_due_at))
    return f"ran {words}, paged {len(users)}"


def following(step: int, loop: int, count: int, repeat: int) -> tuple[int, int]:
    """The step after (step, loop): the next one, the first again while repeats remain,
    else one past the last (the wait before the escalation is exhausted)."""
    if step + 1 < count:
        return step + 1, loop
    if loop < repeat:
        return 0, loop + 1
    return count, loop


def step_users(step: dict, *, at) -> tuple[list, list[str]]:
    """The active users a step pages at instant ``at``, each once, in target order; and a
    sentence for each target that gave nobody."""
    users, problems, seen = [], [], set()
    for target in step["targets"]:
        (kind, pk), = target.items()
        found, problem = target_user_ids(kind, pk, at=at)
        if problem:
            problems.append(problem)
        for user_id in found:
            if user_id not in seen:
                seen.add(user_id)
                users.append(user_id)
    by_id = User.objects.filter(is_active=True).in_bulk(users)
    inactive = [pk for pk in users if pk not in by_id]
    if inactive:
        problems.append(f"{len(inactive)} deactivated or deleted user(s) skipped")
    return [by_id[pk] for pk in users if pk in by_id], problems


def target_user_ids(kind: str, pk: int, *, at) -> tuple[list[int], str]:
    if kind == "user":
        return [pk], ""
    if kind == "schedule":
        schedule = Schedule.objects.filter(pk=pk).first()
        if schedule is None:
            return [], f"schedule {pk} no longer exists"
        on_call = shifts.on_call_at(schedule, at)
        return on_call, "" if on_call else \
            f"schedule {schedule.name} has nobody on call and no fallback user"
    team = Team.objects.filter(pk=pk).first()
    if team is None:
        return [], f"team {pk} no longer exists"
    members = list(team.members.filter(is_active=True).order_by("username")
                   .values_list("pk", flat=True))
    return members, "" if members else f"team {team.name} has no active members"


def exhaust(escalation: Escalation, incident: Incident) -> None:
    # Rounds actually run: one more than the plan's repeats after an Escalate now that
    # started the steps again.
    runs = escalation.loop + 1
    escalation.status, escalation.next_due_at = Status.EXHAUSTED, None
    escalation.note = "every step ran and nobody acknowledged"
    escalation.save()
    escalate(incident, key=f"policy-exhausted:{escalation.loop}",
             reason=f"Escalation exhausted: every step of {escalation.plan['name']} ran "
                    f"{runs} time{'s' if runs > 1 else ''} and nobody acknowledged")


def skip(escalation: Escalation, incident: Incident, why: str) -> None:
    escalation.status, escalation.next_due_at, escalation.note = Status.SKIPPED, None, why[:255]
    escalation.save()
    TimelineEntry.objects.create(incident=incident, kind=TimelineEntry.Kind.ESCALATION,
                                 message=f"Nobody paged automatically. {why}",
                                 data={"skipped": True})


def stop(escalation: Escalation, why: str) -> None:
    escalation.status, escalation.next_due_at, escalation.note = Status.STOPPED, None, why[:255]
    escalation.save()


# By hand --------------------------------------------------------------------------------

def escalate_now(incident: Incident, *, actor=None, expected_steps_run: int | None = None) -> str:
    """Run the incident's next step now (the admin's button, POST incidents/<id>/escalate/).
    The escalation then goes on from there while the incident is triggered. The button
    passes ``expected_steps_run``, the count the person saw: pressed twice, or by two
    people at once, it runs one step, not two levels."""
    if not incident.is_open:
        raise NoEscalation(f"Incident #{incident.number} is resolved: nobody is paged "
                           "about it.")
    if not Escalation.objects.filter(pk=incident.pk).exists():
        policy = policy_for(incident)
        if policy is None:
            raise NoEscalation(f"Incident #{incident.number} has no escalation policy (nor "
                               "has its service): page someone by hand instead.")
        Escalation.objects.get_or_create(incident=incident, defaults={"policy": policy})
    outcome = run_step(incident.pk, by_hand=True, actor=actor,
                       expected_steps_run=expected_steps_run)
    if outcome == "resolved":
        raise NoEscalation(f"Incident #{incident.number} is resolved: nobody is paged "
                           "about it.")
    if outcome == "a step ran meanwhile":
        raise NoEscalation("A step ran since this page was shown (someone escalated, or its "
                           "time came): nothing more was run. Look at the page again.")
    if outcome.startswith("no escalation"):
        raise NoEscalation("Another escalation of this incident is running; try again.")
    if outcome == "no steps":
        raise NoEscalation(f"The escalation policy of incident #{incident.number} has no "
                           "steps: page someone by hand instead.")
    return outcome


# Stopping -------------------------------------------------------------------------------

def on_incident_status(sender, incident: Incident, old_status, new_status, actor=None,
                       **kwargs) -> None:
    """incident_status_recorded, in the transaction that changes the status: an opened
    incident starts escalating; an acknowledged or resolved one stops, and what its pages
    still had waiting is cancelled, with the change or not at all."""
    if old_status is None and new_status == Incident.Status.TRIGGERED:
        start(incident)
        return
    if new_status not in (Incident.Status.ACKNOWLEDGED, Incident.Status.RESOLVED):
        return
    stopped = Escalation.objects.filter(pk=incident.pk, status=Status.ACTIVE).update(
        status=Status.STOPPED, next_due_at=None, note=f"incident {new_status}")
    cancelled = cancel_waiting_messages(incident, new_status)
    if stopped or cancelled:
        by = f" by {display_name(actor)}" if actor else ""
        messages = f"; {cancelled} waiting message{'s' if cancelled != 1 else ''} not sent" \
            if cancelled else ""
        TimelineEntry.objects.create(
            incident=incident, kind=TimelineEntry.Kind.ESCALATION, actor=actor,
            message=f"Escalation stopped: {new_status}{by}{messages}",
            data={"stopped": new_status, "cancelled": cancelled})


def cancel_waiting_messages(incident: Incident, new_status: str) -> int:
    """Cancel the page messages not yet sent, every one that exists when the status
    changes. Not compared by time: a step that held the incident's lock while the
    acknowledgement waited for it made its pages a moment after the acknowledgement's
    clock, and those must stop too. (An incident is acknowledged once, so pages made by
    hand afterwards, to add a responder, are not here yet: they run until it is
    resolved.)"""
    now = timezone.now()
    waiting = PersonalNotification.objects.filter(
        incident=incident, purpose=PersonalNotification.Purpose.PAGE,
        status=PersonalNotification.Status.PENDING).filter(unclaimed(now))
    word = "resolved" if new_status == Incident.Status.RESOLVED else "acknowledged"
    return waiting.update(
        status=PersonalNotification.Status.CANCELLED, next_attempt_at=None,
        error=f"Not sent: incident #{incident.number} was {word} before this was due.")


# Timing ---------------------------------------------------------------------------------

def queue_run(incident_id: int) -> None:
    taskqueue.enqueue(RUN_TASK, incident_id, name=f"escalation-{incident_id}",
                      group="escalations")


def schedule_run(incident_id: int, due) -> None:
    """A one-off task at the step's due time. django-q2's scheduler looks every 30 s, so
    it may be late; the timer job runs the step on time, and whichever comes second
    finds it done."""
    taskqueue.schedule_once(RUN_TASK, incident_id, at=due,
                            name=f"escalation {incident_id} due {due:%H%M%S%f}")


def due_ids(now, limit: int = 1000) -> list[int]:
    return list(Escalation.objects.filter(status=Status.ACTIVE, next_due_at__lte=now)
                .order_by("next_due_at").values_list("pk", flat=True)[:limit])


def run_due(limit: int = 1000) -> int:
    """Run every step due now, each in its own transaction."""
    ran = 0
    for incident_id in due_ids(timezone.now(), limit):
        try:
            ran += run_step(incident_id).startswith("ran")
        except Exception as problem:
            # One broken escalation must not hold up the others. It is tried again soon
            # (the timer waits for it like any step), and says why on the incident page
            # and the Escalations list, not only in the worker's log.
            logger.exception("Escalation of incident %s failed", incident_id)
            Escalation.objects.filter(pk=incident_id, status=Status.ACTIVE).update(
                next_due_at=timezone.now() + timedelta(seconds=RETRY_FAILED_STEP_SECONDS),
                note=f"The step failed and is tried again every "
                     f"{RETRY_FAILED_STEP_SECONDS} s: {problem.__class__.__name__}: "
                     f"{problem}"[:255])
    return ran


def next_due(now) -> object:
    """The earliest due time, after ``now``, of a running escalation or a waiting page
    message. A step already past due was just tried by run_due (another worker has it, or
    it failed and was given a later time): counting it would have the timer sleep 0 s and
    try it again and again."""
    step = Escalation.objects.filter(status=Status.ACTIVE, next_due_at__gt=now) \
        .aggregate(at=Min("next_due_at"))
    message = PersonalNotification.objects.filter(
        status=PersonalNotification.Status.PENDING, purpose=PersonalNotification.Purpose.PAGE,
        next_attempt_at__gt=now).aggregate(at=Min("next_attempt_at"))
    times = [at for at in (step["at"], message["at"]) if at is not None]
    return min(times) if times else None


def queue_due_messages(since, now) -> int:
    """Queue the page messages that fell due since the last look (their one-off schedule
    may be up to 30 s late; the claim keeps a second task from sending again)."""
    pks = list(PersonalNotification.objects.filter(
        status=PersonalNotification.Status.PENDING, purpose=PersonalNotification.Purpose.PAGE,
        next_attempt_at__gt=since, next_attempt_at__lte=now).filter(unclaimed(now))
        .values_list("pk", flat=True)[:1000])
    for pk in pks:
        sending.personal_outbox.enqueue(pk)
    return len(pks)


def run_due_escalations(seconds: float = TIMER_SECONDS, sleep=time.sleep) -> int:
    """Every minute (tocsin/jobs.py): run the steps due now (the sweeper: nothing is left
    behind by a lost task or a killed worker), then wait for what falls due within
    ``seconds`` and run it on time. Returns when nothing more falls due in that time, so
    an idle portal costs four small queries a minute.

    One run waits at a time: a run about to wait marks itself as the waiting one (in the
    shared cache), and an earlier run that finds a later one marked returns at its next
    look. Two runs overlap only until then, so they never hold both of a cluster's two
    default workers for long."""
    started = time.monotonic()
    me = timezone.now().timestamp()
    looked = timezone.now() - timedelta(seconds=seconds + 30)
    ran = run_due()
    if settings.Q_CLUSTER.get("workers", 2) < 2:
        # A cluster's only worker must not sleep here while alerts wait: sweep and go;
        # steps then run at their one-off task, up to a scheduler pass (30 s) late.
        queue_due_messages(looked, timezone.now())
        return ran
    while True:
        now = timezone.now()
        queue_due_messages(looked, now)
        looked = now
        left = seconds - (time.monotonic() - started)
        upcoming = next_due(now)
        if left <= 0 or upcoming is None or (upcoming - now).total_seconds() > left:
            return ran
        if not take_the_wait(me, left):
            return ran
        sleep(max(0.0, min((upcoming - now).total_seconds(), TIMER_POLL_SECONDS, left)))
        ran += run_due()


def take_the_wait(me: float, left: float) -> bool:
    """Mark the run that started at ``me`` as the one waiting, unless a later run is.
    Not atomic, nor need it be: two runs racing here both wait one more look at most."""
    waiting = cache.get(WAITING_RUN_KEY)
    if waiting is not None and waiting > me:
        return False
    cache.set(WAITING_RUN_KEY, me, timeout=left + TIMER_POLL_SECONDS)
    return True
