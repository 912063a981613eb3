"""Shared by the escalation engine's tests: a policy built in one call, people who can be
reached, a frozen clock the tests move, and what the timeline and the inboxes say."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.core.cache import cache
from django.utils import timezone

from incidents import lifecycle
from incidents.models import EscalationPolicy, Team
from notifications.models import NotificationSettings
from oncall import escalation
from oncall.models import (
    ContactMethod,
    Escalation,
    EscalationStep,
    EscalationTarget,
    Page,
    Schedule,
)
from tests.conftest import make_user

ESCALATION_SUBJECT = "Escalation on incident"


class Clock:
    """``timezone.now()`` frozen at a whole second, moved only by the test or by the timer
    job's ``sleep`` (which this stands in for); ``monotonic()`` moves with it, so the timer
    measures its window on the same clock."""

    MAX_SLEEPS = 50

    def __init__(self, start):
        self.at = start
        self.ticks = 1000.0
        self.slept: list[float] = []

    def now(self):
        return self.at

    def monotonic(self) -> float:
        return self.ticks

    def advance(self, **delta) -> None:
        step = timedelta(**delta)
        self.at += step
        self.ticks += step.total_seconds()

    def to(self, instant) -> None:
        self.advance(seconds=(instant - self.at).total_seconds())

    def sleep(self, seconds: float) -> None:
        # A timer that sleeps this often within one run is spinning, not waiting: fail
        # the test instead of hanging it.
        assert len(self.slept) < self.MAX_SLEEPS, f"the timer is spinning: {self.slept[:5]}…"
        self.slept.append(seconds)
        self.advance(seconds=seconds)


@pytest.fixture(name="clock")
def frozen_clock(monkeypatch):
    frozen = Clock(timezone.now().replace(microsecond=0))
    monkeypatch.setattr("django.utils.timezone.now", frozen.now)
    # Only the engine's own view of time.monotonic: pytest's timing keeps the real one.
    monkeypatch.setattr(escalation, "time", SimpleNamespace(monotonic=frozen.monotonic))
    # No waiting timer run left over from another test (the cache outlives them).
    cache.delete(escalation.WAITING_RUN_KEY)
    return frozen


@pytest.fixture(name="portal_settings")
def escalations_emailed(db):
    """Portal emails (Escalations among them) go to the ops list."""
    record = NotificationSettings.load()
    record.default_recipients = ["ops@example.com"]
    record.save()
    return record


def person(name: str, role: str = "Responder", *, email: bool = True) -> User:
    """A user reached at ``<name>@example.com`` (no rules: the account address)."""
    user = make_user(name, role)
    if email:
        user.email = f"{name}@example.com"
    user.first_name = name.capitalize()
    user.save()
    return user


def contact(user: User, kind: str, address: str, delay: int = 0, *, enabled: bool = True):
    method = ContactMethod.objects.create(user=user, kind=kind, address=address,
                                          enabled=enabled)
    user.notification_rules.create(contact_method=method, delay_minutes=delay)
    return method


def step(delay_minutes: int, *targets) -> tuple:
    return delay_minutes, targets


def make_policy(team: Team, *steps: tuple, name: str = "Checkout on call",
                **fields) -> EscalationPolicy:
    """A policy whose steps page the users, schedules and teams given, in order."""
    policy = EscalationPolicy.objects.create(name=name, team=team, **fields)
    for position, (delay, targets) in enumerate(steps):
        row = EscalationStep.objects.create(policy=policy, position=position,
                                            delay_minutes=delay)
        for target in targets:
            kind = {User: "user", Schedule: "schedule", Team: "team"}[type(target)]
            EscalationTarget.objects.create(step=row, **{kind: target})
    return policy


def open_incident(inline, service, entity_id: str = "db-1", **fields):
    """An incident triggered as alert processing opens one, its tasks run as a worker
    would once the opening transaction commits."""
    return inline(lifecycle.open_incident, service=service, title="Disk full on db-1",
                  entity_id=entity_id, **fields)


def escalation_of(incident) -> Escalation:
    return Escalation.objects.get(pk=incident.pk)


def run_when_due(clock, inline, incident) -> int:
    """Move the clock to the moment the incident's next step is due, and run the timer's
    sweep once then; how many steps ran."""
    clock.to(escalation_of(incident).next_due_at)
    return inline(escalation.run_due)


def pages(incident) -> list[tuple[str, int | None, int]]:
    """(username, step, loop) of every page, oldest first."""
    return list(Page.objects.filter(incident=incident).order_by("created_at", "id")
                .values_list("user__username", "step", "loop"))


def timeline(incident, kind: str | None = None) -> list[str]:
    entries = incident.timeline.order_by("created_at", "id")
    if kind:
        entries = entries.filter(kind=kind)
    return list(entries.values_list("message", flat=True))


def escalation_emails() -> list:
    return [m for m in mail.outbox if ESCALATION_SUBJECT in m.subject]


def inbox(address: str) -> list:
    return [m for m in mail.outbox if address in m.to]
