"""Processing an inbound event: a bounded number of attempts, poison events that fail with
their cause instead of looping, and the slow work done before any lock is taken."""

from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from incidents.models import Incident, Tag
from integrations import processing, queue, tasks
from integrations.models import Alert, AlertRule, InboundEvent
from tests.ingest_helpers import post_event


class Killed(BaseException):
    """What a task timeout does to an attempt: it stops, and no handler runs."""


def queued_event(integration, body=b'{"message": "Disk full", "alert_type": "critical"}'):
    return InboundEvent.objects.create(integration=integration, source="generic", body=body)


def left_for_the_sweeper(event):
    """Age the event past TOCSIN_REQUEUE_AFTER_SECONDS, as if its task was lost, and its
    last attempt (if any) past the task timeout, as if the timeout stopped it."""
    an_hour_ago = timezone.now() - timedelta(hours=1)
    InboundEvent.objects.filter(pk=event.pk).update(enqueued_at=an_hour_ago)
    InboundEvent.objects.filter(pk=event.pk, attempt_started_at__isnull=False).update(
        attempt_started_at=an_hour_ago
    )


def last_attempt_started(event, seconds_ago):
    InboundEvent.objects.filter(pk=event.pk).update(
        attempt_started_at=timezone.now() - timedelta(seconds=seconds_ago)
    )


@pytest.fixture
def swept(monkeypatch):
    """Event ids the sweeper hands to the queue."""
    handed = []
    monkeypatch.setattr("tocsin.taskqueue.async_task", lambda f, pk, **k: handed.append(pk))
    return handed


def test_an_alert_naming_1500_tags_completes_with_the_tags_that_exist(
    client, integration, run_tasks, django_capture_on_commit_callbacks
):
    # One OR term per name made an expression tree deeper than SQLite allows (1,000), and
    # the OperationalError kept the event queued forever.
    Tag.objects.bulk_create(Tag(name=f"Team-{n}") for n in range(0, 1500, 5))
    names = [f"team-{n}" for n in range(1500)]
    response = post_event(client, integration, {
        "message": "Pod crash", "alert_type": "critical", "tags": names,
    }, capture=django_capture_on_commit_callbacks)

    event = InboundEvent.objects.get(trace_id=response.json()["trace_id"])
    assert (event.status, event.error, event.attempts) == ("completed", "", 1)
    incident = Incident.objects.get()
    assert incident.tags.count() == 300
    assert set(incident.tags.values_list("name", flat=True)) == {
        f"Team-{n}" for n in range(0, 1500, 5)}


def test_1500_tags_added_by_a_rule_to_a_joined_incident_complete(
    client, integration, incident, run_tasks, django_capture_on_commit_callbacks
):
    Tag.objects.bulk_create(Tag(name=f"zone-{n}") for n in range(1500))
    AlertRule.objects.create(integration=integration, name="zones", conditions=[], actions=[
        {"type": "add_tags", "value": [f"ZONE-{n}" for n in range(1500)]}])
    response = post_event(client, integration, {
        "message": "Still full", "alert_type": "critical", "entity_id": "db-1",
    }, capture=django_capture_on_commit_callbacks)

    event = InboundEvent.objects.get(trace_id=response.json()["trace_id"])
    assert event.status == "completed", event.error
    assert incident.tags.count() == 1500


def locked(alert):
    raise OperationalError("database is locked")


def test_an_event_that_always_hits_a_database_error_fails_with_it_after_five_attempts(
    integration, monkeypatch, swept
):
    monkeypatch.setattr("integrations.grouping.group_alert", locked)
    event = queued_event(integration)
    for attempt in range(1, 5):
        with pytest.raises(OperationalError):
            processing.process_event(event.pk)
        event.refresh_from_db()
        # Still queued for a retry, with the attempt counted and the cause on show.
        assert (event.status, event.attempts) == ("queued", attempt)
        assert event.error == "OperationalError: database is locked"

    assert processing.process_event(event.pk) == "failed"
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("failed", 5)
    assert event.error == (
        "Gave up after 5 attempts. Last error: OperationalError: database is locked")
    assert not Alert.objects.filter(inbound_event=event).exists()

    left_for_the_sweeper(event)
    assert tasks.requeue_stale_events() == 0
    assert swept == []


def test_attempts_stopped_by_the_task_timeout_count_and_the_sweeper_then_fails_the_event(
    integration, monkeypatch, swept
):
    def too_slow(event):
        raise Killed()

    monkeypatch.setattr("integrations.processing.build_alert", too_slow)
    event = queued_event(integration)
    for _ in range(5):
        left_for_the_sweeper(event)
        assert tasks.requeue_stale_events() == 1
        with pytest.raises(Killed):
            processing.process_event(event.pk)
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("queued", 5)

    left_for_the_sweeper(event)
    assert tasks.requeue_stale_events() == 0
    assert swept == [event.pk] * 5
    event.refresh_from_db()
    assert event.status == "failed"
    assert event.error.startswith("Gave up after 5 attempts. Last error: no attempt finished")
    # A task for it still in the queue finds it failed and does nothing.
    assert processing.process_event(event.pk) == "skipped"


def test_a_task_for_a_spent_event_fails_it_without_trying_again(integration, monkeypatch):
    event = queued_event(integration)
    InboundEvent.objects.filter(pk=event.pk).update(attempts=5)
    monkeypatch.setattr("integrations.processing.build_alert", pytest.fail)

    assert processing.process_event(event.pk) == "failed"
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("failed", 5)


def test_the_budget_follows_the_setting(integration, monkeypatch, settings):
    settings.TOCSIN_EVENT_MAX_ATTEMPTS = 2
    monkeypatch.setattr("integrations.grouping.group_alert", locked)
    event = queued_event(integration)
    with pytest.raises(OperationalError):
        processing.process_event(event.pk)
    assert processing.process_event(event.pk) == "failed"
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("failed", 2)


def test_a_reprocessed_event_gets_a_fresh_budget(
    integration, monkeypatch, swept, django_capture_on_commit_callbacks
):
    event = queued_event(integration)
    with monkeypatch.context() as patched:
        patched.setattr("integrations.grouping.group_alert", locked)
        for _ in range(4):
            with pytest.raises(OperationalError):
                processing.process_event(event.pk)
        assert processing.process_event(event.pk) == "failed"

    event.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        assert queue.requeue(event)
    event.refresh_from_db()
    assert (event.status, event.attempts, event.error) == ("queued", 0, "")
    assert swept == [event.pk]

    assert processing.process_event(event.pk) == "completed"
    event.refresh_from_db()
    assert (event.status, event.attempts, event.error) == ("completed", 1, "")
    assert Incident.objects.get().alerts.count() == 1


def test_a_duplicate_task_for_a_completed_event_does_nothing(integration):
    event = queued_event(integration)
    assert processing.process_event(event.pk) == "completed"
    assert processing.process_event(event.pk) == "skipped"

    event.refresh_from_db()
    assert (event.status, event.attempts) == ("completed", 1)
    assert Incident.objects.get().alerts.count() == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_body_is_parsed_and_judged_before_any_transaction_or_lock(
    integration, monkeypatch
):
    # On SQLite the transaction holds the write lock, so a slow parse inside it made
    # concurrent ingest fail with "database is locked".
    seen = []
    parse = processing.parse_event
    monkeypatch.setattr("integrations.processing.parse_event",
                        lambda event: seen.append(connection.in_atomic_block) or parse(event))
    event = queued_event(integration)

    assert processing.process_event(event.pk) == "completed"
    assert seen == [False]
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("completed", 1)


def test_a_duplicate_task_during_the_last_attempt_leaves_it_to_complete(integration, monkeypatch):
    event = queued_event(integration)
    InboundEvent.objects.filter(pk=event.pk).update(attempts=4)
    duplicates = []
    build = processing.build_alert

    def with_a_duplicate_meanwhile(event):
        duplicates.append(processing.process_event(event.pk))
        return build(event)

    monkeypatch.setattr("integrations.processing.build_alert", with_a_duplicate_meanwhile)

    assert processing.process_event(event.pk) == "completed"
    assert duplicates == ["skipped"]
    event.refresh_from_db()
    assert (event.status, event.attempts, event.error) == ("completed", 5, "")
    assert Alert.objects.filter(inbound_event=event).count() == 1


def test_a_duplicate_task_during_an_attempt_does_not_count_as_one(integration, monkeypatch):
    event = queued_event(integration)
    duplicates = []
    build = processing.build_alert

    def with_duplicates_meanwhile(event):
        duplicates.extend(processing.process_event(event.pk) for _ in range(6))
        return build(event)

    monkeypatch.setattr("integrations.processing.build_alert", with_duplicates_meanwhile)

    assert processing.process_event(event.pk) == "completed"
    assert duplicates == ["skipped"] * 6
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("completed", 1)


def test_a_task_after_an_attempt_outlived_the_task_timeout_tries_again(
    integration, settings
):
    event = queued_event(integration)
    InboundEvent.objects.filter(pk=event.pk).update(attempts=1)
    last_attempt_started(event, settings.Q_CLUSTER["timeout"] - 5)
    assert processing.process_event(event.pk) == "skipped"

    last_attempt_started(event, settings.Q_CLUSTER["timeout"] + 1)
    assert processing.process_event(event.pk) == "completed"
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("completed", 2)


def test_a_transient_error_ends_the_attempt_so_the_next_task_retries_at_once(
    integration, monkeypatch
):
    event = queued_event(integration)
    with monkeypatch.context() as patched:
        patched.setattr("integrations.grouping.group_alert", locked)
        with pytest.raises(OperationalError):
            processing.process_event(event.pk)
    event.refresh_from_db()
    assert (event.status, event.attempts, event.attempt_started_at) == ("queued", 1, None)

    assert processing.process_event(event.pk) == "completed"
    event.refresh_from_db()
    assert (event.status, event.attempts, event.error) == ("completed", 2, "")


def test_the_sweeper_leaves_a_spent_event_alone_while_its_last_attempt_may_be_running(
    integration, settings, swept
):
    event = queued_event(integration)
    left_for_the_sweeper(event)
    InboundEvent.objects.filter(pk=event.pk).update(attempts=5)
    last_attempt_started(event, settings.Q_CLUSTER["timeout"] - 5)

    assert tasks.requeue_stale_events() == 0
    event.refresh_from_db()
    assert (event.status, event.attempts, event.error) == ("queued", 5, "")
    assert swept == []

    # Past the task timeout the attempt was certainly stopped: the event fails.
    last_attempt_started(event, settings.Q_CLUSTER["timeout"] + 1)
    assert tasks.requeue_stale_events() == 0
    event.refresh_from_db()
    assert event.status == "failed"
    assert event.error.startswith("Gave up after 5 attempts. Last error: no attempt finished")
    assert swept == []


def test_the_sweeper_does_not_requeue_an_event_while_an_attempt_may_be_running(
    integration, settings, swept
):
    event = queued_event(integration)
    left_for_the_sweeper(event)
    InboundEvent.objects.filter(pk=event.pk).update(attempts=2)
    last_attempt_started(event, 10)

    assert tasks.requeue_stale_events() == 0
    assert swept == []

    last_attempt_started(event, settings.Q_CLUSTER["timeout"] + 1)
    assert tasks.requeue_stale_events() == 1
    assert swept == [event.pk]
