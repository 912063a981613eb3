"""The outbox (tocsin/outbox.py): one life cycle for every kind of row the portal sends,
each outcome recorded in one transaction, and a new outbox made of a model, a task, a group
and a send function."""

import importlib
import itertools
from datetime import timedelta

import pytest
from django.apps import apps
from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule

from destinations import sending
from destinations.models import Delivery, Destination
from incidents import lifecycle
from incidents.models import TimelineEntry
from notifications.models import Notification, NotificationSettings
from tests.delivery_helpers import make_destination
from tests.sinks import Reply
from tocsin.outbox import Outbox
from tocsin.transport import Result, TransportError

OPS = ["ops@example.com"]
KEYS = itertools.count()


def a_test_delivery(service):
    destination = make_destination(service, "webhook", {"url": "https://example.com/hook"})
    return Delivery.objects.create(destination=destination, event=Delivery.Event.TEST,
                                   next_attempt_at=timezone.now())


def a_notification(service):
    return Notification.objects.create(
        type="platform_actions", event="test", dedup_key=f"test-{next(KEYS)}",
        subject="Hello", body_text="Hello", recipients=OPS, next_attempt_at=timezone.now())


ROWS = {"delivery": a_test_delivery, "notification": a_notification}


class ScriptedOutbox(Outbox):
    """A third outbox, as a new app would write it: a model, a task, a group and ``send``
    (here answering from a script instead of reaching anyone)."""

    task = "paging.sending.send_page"
    group = "pages"

    def __init__(self, model, *answers):
        self.model = model
        self.answers = list(answers)

    def send(self, row):
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def handed_over(monkeypatch):
    """What the outbox hands to django-q2: ("task", func, pk, group) for a queued task,
    ("schedule", func, pk, due) for a one-off retry."""
    handed = []
    monkeypatch.setattr("tocsin.taskqueue.async_task", lambda func, pk, **kw: handed.append(
        ("task", func, pk, kw["group"])))
    monkeypatch.setattr("tocsin.taskqueue.schedule", lambda func, pk, **kw: handed.append(
        ("schedule", func, pk, kw["next_run"])))
    return handed


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("kind", sorted(ROWS))
def test_a_new_outbox_retries_and_sends_with_nothing_but_its_send_function(
    kind, service, handed_over
):
    row = ROWS[kind](service)
    outbox = ScriptedOutbox(type(row), TransportError("busy", permanent=False, retry_after=30),
                            Result(status=200))

    assert outbox.process(row.pk).startswith("retry at ")
    row.refresh_from_db()
    assert (row.status, row.attempts, row.error) == ("pending", 1, "busy")
    assert row.next_attempt_at >= row.last_attempt_at + timedelta(seconds=30)
    assert handed_over == [("schedule", "paging.sending.send_page", row.pk, row.next_attempt_at)]
    assert outbox.process(row.pk) == "not due or already taken"

    type(row).objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    assert outbox.process(row.pk) == "sent"
    row.refresh_from_db()
    assert (row.status, row.attempts, row.error, row.claimed_until) == ("sent", 2, "", None)
    assert row.sent_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize("kind", sorted(ROWS))
def test_only_one_worker_claims_a_row_of_any_outbox(kind, service):
    row = ROWS[kind](service)
    outbox = ScriptedOutbox(type(row))
    assert outbox.claim(row.pk) is True
    assert outbox.claim(row.pk) is False


@pytest.mark.django_db
@pytest.mark.parametrize("kind", sorted(ROWS))
def test_a_bug_in_send_fails_the_row_for_good_with_its_cause(kind, service):
    row = ROWS[kind](service)
    outbox = ScriptedOutbox(type(row), KeyError("config"))
    assert outbox.process(row.pk) == "failed"
    row.refresh_from_db()
    assert (row.status, row.attempts, row.error, row.claimed_until) == (
        "failed", 1, "KeyError: 'config'", None)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", sorted(ROWS))
def test_a_resent_row_is_due_now_with_the_full_retry_budget(kind, service, settings):
    settings.TOCSIN_DELIVERY_MAX_ATTEMPTS = 1
    row = ROWS[kind](service)
    outbox = ScriptedOutbox(type(row), TransportError("down", permanent=False), Result())
    assert outbox.process(row.pk) == "failed"  # its one attempt is used up

    assert outbox.reopen([row.pk]) == 1
    assert outbox.reopen([row.pk]) == 0  # already pending
    row.refresh_from_db()
    assert (row.status, row.attempts, row.error) == ("pending", 0, "")
    assert outbox.process(row.pk) == "sent"


@pytest.mark.django_db
@pytest.mark.parametrize("kind", sorted(ROWS))
def test_the_sweeper_queues_the_overdue_rows_of_any_outbox_with_its_task_and_group(
    kind, service, handed_over
):
    ROWS[kind](service)  # fresh: still in the queue, left alone
    lost = ROWS[kind](service)
    type(lost).objects.filter(pk=lost.pk).update(
        next_attempt_at=timezone.now() - timedelta(minutes=2))
    assert ScriptedOutbox(type(lost)).sweep() == 1
    assert handed_over == [("task", "paging.sending.send_page", lost.pk, "pages")]


# Each outcome is one transaction --------------------------------------------------------


def failing_timeline(monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("database went away")
    monkeypatch.setattr(TimelineEntry.objects, "create", refuse)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_success_whose_consequences_cannot_be_recorded_stays_sent_and_says_so(
    service, http_sink, monkeypatch, settings, handed_over
):
    destination = make_destination(service, "webhook", {"url": f"{http_sink.url}/hook"})
    Destination.objects.filter(pk=destination.pk).update(consecutive_failures=2, failing=True)
    monkeypatch.setattr(sending.delivery_outbox, "enqueue", lambda pk: None)
    incident = lifecycle.open_incident(service=service, title="Disk full", entity_id="db-1")
    delivery = Delivery.objects.get()
    failing_timeline(monkeypatch)

    assert sending.send_delivery(delivery.pk) == "sent"

    delivery.refresh_from_db()
    destination.refresh_from_db()
    # The message went out: the row says so, whatever happened after. Left pending, it
    # would be claimed again once its claim ran out and sent again every few minutes.
    assert (delivery.status, delivery.attempts, delivery.claimed_until) == ("sent", 1, None)
    assert "what follows from it was not: RuntimeError: database went away" in delivery.error
    # What the hook records is all or nothing: the destination's reset went with the
    # timeline entry.
    assert (destination.failing, destination.consecutive_failures) == (True, 2)
    assert not incident.timeline.filter(kind="delivery").exists()
    assert sending.queue_due_deliveries() == 0
    assert len(http_sink.requests) == 1


def gone_destination(service, http_sink, monkeypatch, settings) -> Destination:
    """A destination that answers 410 (permanent), failing after one failure, with a
    recipient for the Platform Action that announces it."""
    settings.TOCSIN_DESTINATION_FAILING_AFTER = 1
    NotificationSettings.objects.update_or_create(pk=1, defaults={"default_recipients": OPS})
    destination = make_destination(service, "webhook", {"url": f"{http_sink.url}/hook"})
    http_sink.default = Reply(410, {"error": "gone"})
    monkeypatch.setattr(sending.delivery_outbox, "enqueue", lambda pk: None)
    return destination


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_final_failure_whose_consequences_cannot_be_recorded_stays_failed(
    service, http_sink, monkeypatch, settings, handed_over
):
    destination = gone_destination(service, http_sink, monkeypatch, settings)
    lifecycle.open_incident(service=service, title="Disk full", entity_id="db-1")
    delivery = Delivery.objects.get()
    failing_timeline(monkeypatch)

    assert sending.send_delivery(delivery.pk) == "failed"

    delivery.refresh_from_db()
    destination.refresh_from_db()
    assert delivery.status == "failed"
    assert delivery.error.startswith("HTTP 410")
    assert delivery.error.endswith("RuntimeError: database went away")
    assert (destination.failing, destination.consecutive_failures) == (False, 0)
    # The Platform Action about the failing destination was recorded in the hook's
    # transaction, so it is gone too: nobody is told of a failure the records do not show.
    assert not Notification.objects.filter(type="platform_actions").exists()
    assert len(http_sink.requests) == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_final_failure_records_the_destination_and_its_platform_action_together(
    service, http_sink, monkeypatch, settings, handed_over
):
    destination = gone_destination(service, http_sink, monkeypatch, settings)
    incident = lifecycle.open_incident(service=service, title="Disk full", entity_id="db-1")

    assert sending.send_delivery(Delivery.objects.get().pk) == "failed"

    destination.refresh_from_db()
    assert (destination.failing, destination.consecutive_failures) == (True, 1)
    assert incident.timeline.filter(kind="delivery", message__contains="failed").exists()
    assert Notification.objects.get(type="platform_actions").subject.endswith("is failing")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_retry_is_scheduled_only_once_its_attempt_is_committed(
    service, http_sink, monkeypatch, handed_over
):
    make_destination(service, "webhook", {"url": f"{http_sink.url}/hook"})
    http_sink.default = Reply(503, {})
    monkeypatch.setattr(sending.delivery_outbox, "enqueue", lambda pk: None)
    lifecycle.open_incident(service=service, title="Disk full", entity_id="db-1")
    delivery = Delivery.objects.get()

    with pytest.raises(RuntimeError), transaction.atomic():
        assert sending.send_delivery(delivery.pk).startswith("retry at ")
        raise RuntimeError("the worker's transaction rolls back")

    assert handed_over == []
    assert sending.send_delivery(delivery.pk).startswith("retry at ")
    delivery.refresh_from_db()
    assert handed_over == [("schedule", "destinations.sending.send_delivery", delivery.pk,
                            delivery.next_attempt_at)]


# The rename of destinations.delivery --------------------------------------------------


@pytest.mark.django_db
def test_schedules_naming_the_old_delivery_module_are_pointed_at_the_new_one():
    def schedule(name, func):
        return Schedule.objects.create(name=name, func=func, schedule_type=Schedule.ONCE)
    sweeper = schedule("old sweeper", "destinations.delivery.queue_due_deliveries")
    retry = schedule("old retry", "destinations.delivery.send_delivery")
    other = schedule("other", "notifications.sending.queue_due_notifications")
    migration = importlib.import_module("destinations.migrations.0005_outbox")

    migration.rename(migration.OLD, migration.NEW)(apps, None)

    funcs = dict(Schedule.objects.filter(pk__in=[sweeper.pk, retry.pk, other.pk])
                 .values_list("name", "func"))
    assert funcs == {"old sweeper": "destinations.sending.queue_due_deliveries",
                     "old retry": "destinations.sending.send_delivery",
                     "other": "notifications.sending.queue_due_notifications"}
