"""The delivery engine: fan-out, claiming, retries with backoff, failing destinations."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from destinations import sending
from destinations.models import Delivery, Destination
from destinations.signals import destination_failing
from incidents import lifecycle
from incidents.models import TimelineEntry
from tests.delivery_helpers import make_destination
from tests.sinks import Reply
from tocsin import outbox

# Committed transactions, so that deliveries are queued on commit as in production.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def webhook(service, sink, **fields):
    return make_destination(service, "webhook", {"url": f"{sink.url}/hook"}, **fields)


def due_now(delivery_id):
    Delivery.objects.filter(pk=delivery_id).update(next_attempt_at=timezone.now())
    sending.send_delivery(delivery_id)


def test_each_state_change_is_delivered_once_to_every_destination(
    service, http_sink, deliver_inline
):
    webhook(service, http_sink, name="one")
    webhook(service, http_sink, name="two")
    incident = lifecycle.open_incident(service=service, title="Disk full", entity_id="db-1")
    lifecycle.acknowledge(incident)
    lifecycle.resolve(incident)

    assert Delivery.objects.count() == 6
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}
    events = [r.json["event"] for r in http_sink.requests]
    assert sorted(events) == ["acknowledged"] * 2 + ["resolved"] * 2 + ["triggered"] * 2
    assert TimelineEntry.objects.filter(incident=incident, kind="delivery").count() == 6


def test_the_same_event_is_never_recorded_twice_for_a_destination(service, http_sink):
    destination = webhook(service, http_sink)
    incident = lifecycle.open_incident(service=service, title="x", entity_id="e")
    with pytest.raises(IntegrityError):
        Delivery.objects.create(destination=destination, incident=incident, event="triggered")


def test_deliveries_are_recorded_in_the_transaction_of_the_change(service, http_sink):
    webhook(service, http_sink)
    with pytest.raises(RuntimeError), transaction.atomic():
        lifecycle.open_incident(service=service, title="x", entity_id="e")
        assert Delivery.objects.count() == 1
        raise RuntimeError("roll back")
    assert Delivery.objects.count() == 0


def test_drill_incidents_reach_only_destinations_that_opt_in(service, http_sink, deliver_inline):
    webhook(service, http_sink, name="quiet")
    opted_in = webhook(service, http_sink, name="drills", send_drills=True)
    lifecycle.open_incident(service=service, title="Drill", entity_id="d", drill=True)
    assert list(Delivery.objects.values_list("destination", flat=True)) == [opted_in.pk]
    assert len(http_sink.requests) == 1


def test_500_500_200_is_sent_after_three_attempts(service, http_sink, deliver_inline):
    webhook(service, http_sink)
    http_sink.reply(Reply(500, {"e": 1}), Reply(502, {"e": 2}), Reply(200, {"ok": True}))
    lifecycle.open_incident(service=service, title="x", entity_id="e")
    sent = Delivery.objects.get()
    assert sent.status == "pending" and sent.attempts == 1 and sent.response_status == 500
    assert len(deliver_inline) == 1

    due_now(sent.pk)
    due_now(sent.pk)
    sent.refresh_from_db()
    assert (sent.status, sent.attempts, sent.response_status, sent.error) == ("sent", 3, 200, "")
    assert len(http_sink.requests) == 3
    # Every attempt carries the same delivery id, so the receiver can drop repeats.
    assert len({r.headers["x-tocsin-delivery"] for r in http_sink.requests}) == 1


def test_retries_back_off_exponentially(service, http_sink, deliver_inline, settings):
    settings.TOCSIN_DELIVERY_RETRY_BASE_SECONDS = 10
    webhook(service, http_sink)
    http_sink.default = Reply(503, {})
    lifecycle.open_incident(service=service, title="x", entity_id="e")
    pending = Delivery.objects.get()
    delays = []
    for _ in range(3):
        pending.refresh_from_db()
        delays.append((pending.next_attempt_at - pending.last_attempt_at).total_seconds())
        due_now(pending.pk)
    assert 8 <= delays[0] <= 12 and 16 <= delays[1] <= 24 and 32 <= delays[2] <= 48


def test_429_waits_as_long_as_retry_after_says(service, http_sink, deliver_inline):
    webhook(service, http_sink)
    http_sink.reply(Reply(429, {"error": "slow down"}, {"Retry-After": "120"}))
    lifecycle.open_incident(service=service, title="x", entity_id="e")
    pending = Delivery.objects.get()
    assert pending.status == "pending" and pending.response_status == 429
    wait = (pending.next_attempt_at - pending.last_attempt_at).total_seconds()
    assert 119 <= wait <= 121
    # Not due yet: a worker that picks it up early leaves it alone.
    assert sending.send_delivery(pending.pk) == "not due or already taken"
    due_now(pending.pk)
    pending.refresh_from_db()
    assert pending.status == "sent" and pending.attempts == 2


PAST_DATE = "Wed, 21 Oct 2015 07:28:00 GMT"


@pytest.mark.parametrize("retry_after", ["0", PAST_DATE])
def test_a_429_asking_for_no_wait_still_waits_the_normal_backoff(
    service, http_sink, deliver_inline, settings, retry_after
):
    settings.TOCSIN_DELIVERY_RETRY_BASE_SECONDS = 15
    webhook(service, http_sink)
    http_sink.reply(Reply(429, {}, {"Retry-After": retry_after}))
    lifecycle.open_incident(service=service, title="x", entity_id="e")
    pending = Delivery.objects.get()
    assert (pending.status, pending.response_status) == ("pending", 429)
    wait = (pending.next_attempt_at - pending.last_attempt_at).total_seconds()
    assert 12 <= wait <= 19  # the base backoff ±20 % jitter, and the send's own time
    assert sending.send_delivery(pending.pk) == "not due or already taken"


@pytest.mark.parametrize("retry_after", ["0", "5", PAST_DATE])
def test_a_remote_always_asking_for_no_wait_gets_the_growing_backoff(
    service, http_sink, deliver_inline, settings, retry_after
):
    settings.TOCSIN_DELIVERY_RETRY_BASE_SECONDS = 10
    webhook(service, http_sink)
    http_sink.default = Reply(429, {}, {"Retry-After": retry_after})
    lifecycle.open_incident(service=service, title="x", entity_id="e")
    pending = Delivery.objects.get()
    delays = []
    for _ in range(3):
        pending.refresh_from_db()
        delays.append((pending.next_attempt_at - pending.last_attempt_at).total_seconds())
        due_now(pending.pk)
    # The backoff ±20 % jitter, plus up to a second for the send itself on a busy machine.
    assert 8 <= delays[0] <= 13 and 16 <= delays[1] <= 25 and 32 <= delays[2] <= 49
    pending.refresh_from_db()
    assert (pending.status, pending.attempts) == ("pending", 4)


def test_a_429_asking_for_ten_minutes_waits_ten_minutes(service, http_sink, deliver_inline):
    webhook(service, http_sink)
    http_sink.reply(Reply(429, {}, {"Retry-After": "600"}))
    lifecycle.open_incident(service=service, title="x", entity_id="e")
    pending = Delivery.objects.get()
    wait = (pending.next_attempt_at - pending.last_attempt_at).total_seconds()
    assert 599 <= wait <= 601


def test_a_retry_after_longer_than_the_retry_max_is_cut_to_it(
    service, http_sink, deliver_inline, settings
):
    settings.TOCSIN_DELIVERY_RETRY_MAX_SECONDS = 300
    webhook(service, http_sink)
    http_sink.reply(Reply(503, {}, {"Retry-After": "7200"}))
    lifecycle.open_incident(service=service, title="x", entity_id="e")
    pending = Delivery.objects.get()
    wait = (pending.next_attempt_at - pending.last_attempt_at).total_seconds()
    assert 299 <= wait <= 301


def test_backoff_with_its_jitter_never_passes_the_retry_max(settings):
    settings.TOCSIN_DELIVERY_RETRY_BASE_SECONDS = 15
    settings.TOCSIN_DELIVERY_RETRY_MAX_SECONDS = 300
    # From the fifth attempt on, 15 * 2**(n-1) is past 300: jitter may not push it higher.
    policy = outbox.RetryPolicy.from_settings()
    waits = [policy.backoff_seconds(attempts, None) for attempts in range(5, 9) for _ in range(50)]
    assert max(waits) <= 300
    assert min(waits) >= 0.8 * 240


def test_400_fails_at_once_with_the_response_kept(service, http_sink, deliver_inline):
    webhook(service, http_sink)
    http_sink.reply(Reply(400, {"error": "bad field"}))
    lifecycle.open_incident(service=service, title="x", entity_id="e")
    failed = Delivery.objects.get()
    assert (failed.status, failed.attempts, failed.response_status) == ("failed", 1, 400)
    assert "bad field" in failed.response_body and "HTTP 400" in failed.error
    assert deliver_inline == []


def test_connection_refused_is_retried(service, deliver_inline, settings):
    settings.TOCSIN_ALLOW_PRIVATE_DESTINATIONS = True
    make_destination(service, "webhook", {"url": "http://127.0.0.1:9/hook"})
    lifecycle.open_incident(service=service, title="x", entity_id="e")
    pending = Delivery.objects.get()
    assert pending.status == "pending" and "ConnectionRefused" in pending.error
    assert len(deliver_inline) == 1


def test_attempts_run_out_after_the_configured_limit(service, http_sink, deliver_inline, settings):
    settings.TOCSIN_DELIVERY_MAX_ATTEMPTS = 3
    webhook(service, http_sink)
    http_sink.default = Reply(500, {})
    lifecycle.open_incident(service=service, title="x", entity_id="e")
    pending = Delivery.objects.get()
    due_now(pending.pk)
    due_now(pending.pk)
    pending.refresh_from_db()
    assert (pending.status, pending.attempts) == ("failed", 3)


def test_only_one_worker_wins_the_claim(service, http_sink):
    webhook(service, http_sink)
    lifecycle.open_incident(service=service, title="x", entity_id="e")
    pending = Delivery.objects.get()
    assert sending.delivery_outbox.claim(pending.pk) is True
    assert sending.delivery_outbox.claim(pending.pk) is False


def test_an_expired_claim_is_picked_up_by_the_sweeper(service, http_sink, deliver_inline):
    webhook(service, http_sink)
    incident = lifecycle.open_incident(service=service, title="x", entity_id="e")
    lost = Delivery.objects.create(
        destination=Destination.objects.get(), incident=incident, event="acknowledged",
        next_attempt_at=timezone.now() - timedelta(minutes=2),
        claimed_until=timezone.now() - timedelta(seconds=1),
        attempts=1,
    )
    # Another incident's: one of the same incident would be queued when the lost one is sent.
    other = lifecycle.open_incident(service=service, title="y", entity_id="f")
    fresh = Delivery.objects.create(
        destination=Destination.objects.get(), incident=other, event="acknowledged",
        next_attempt_at=timezone.now(),
    )
    assert sending.queue_due_deliveries() == 1  # the fresh one is still in the queue
    lost.refresh_from_db()
    fresh.refresh_from_db()
    assert fresh.attempts == 0
    assert lost.status == "sent" and lost.attempts == 2


def test_a_destination_that_keeps_failing_is_marked_failing_once(
    service, http_sink, deliver_inline, settings
):
    settings.TOCSIN_DESTINATION_FAILING_AFTER = 2
    destination = webhook(service, http_sink)
    http_sink.default = Reply(404, {"error": "no such hook"})
    announced = []
    destination_failing.connect(
        lambda sender, destination, error, **kw: announced.append(error), weak=False,
        dispatch_uid="test-failing",
    )
    try:
        for n in range(3):
            lifecycle.open_incident(service=service, title=f"x{n}", entity_id=f"e{n}")
    finally:
        destination_failing.disconnect(dispatch_uid="test-failing")
    destination.refresh_from_db()
    assert destination.failing and destination.consecutive_failures == 3
    assert len(announced) == 1 and "HTTP 404" in announced[0]

    http_sink.default = Reply(200, {})
    lifecycle.open_incident(service=service, title="ok", entity_id="ok")
    destination.refresh_from_db()
    assert not destination.failing and destination.consecutive_failures == 0


def test_a_failed_delivery_can_be_sent_again(service, http_sink, deliver_inline):
    webhook(service, http_sink)
    http_sink.reply(Reply(400, {}))
    lifecycle.open_incident(service=service, title="x", entity_id="e")
    failed = Delivery.objects.get()
    assert sending.resend(failed) is True
    failed.refresh_from_db()
    # A re-send starts a fresh retry budget: its attempts count from zero again.
    assert failed.status == "sent" and failed.attempts == 1


def test_a_test_send_reaches_the_destination_without_an_incident(http_sink, deliver_inline):
    destination = Destination.objects.create(
        name="hook", kind="webhook", config={"url": f"{http_sink.url}/hook"}
    )
    test = sending.send_test(destination)
    test.refresh_from_db()
    assert test.status == "sent" and test.incident is None
    assert http_sink.requests[0].json["event"] == "test"
