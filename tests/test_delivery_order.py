"""The deliveries of one destination and incident go out one at a time, in order: a later
event never overtakes an earlier one that is still being sent or retried."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from destinations import sending
from destinations.models import Delivery
from incidents import lifecycle
from tests.conftest import api_client_for
from tests.delivery_helpers import make_destination
from tests.sinks import Reply

# Committed transactions, so that deliveries are queued on commit as in production.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

ACCEPTED = Reply(202, {"status": "success", "dedup_key": "k"})


def pagerduty(service, sink, **fields):
    return make_destination(
        service, "pagerduty", {"integration_key": "KEY", "api_url": f"{sink.url}/pd"}, **fields
    )


def webhook(service, sink, path="hook", **fields):
    return make_destination(service, "webhook", {"url": f"{sink.url}/{path}"}, **fields)


def due_now(sent: Delivery) -> str:
    Delivery.objects.filter(pk=sent.pk).update(next_attempt_at=timezone.now())
    return sending.send_delivery(sent.pk)


def get(incident, event, **filters) -> Delivery:
    return Delivery.objects.get(incident=incident, event=event, **filters)


def test_resolve_waits_for_a_trigger_being_retried_then_follows_it(
    service, http_sink, deliver_inline
):
    pagerduty(service, http_sink)
    http_sink.default = ACCEPTED
    http_sink.reply(Reply(503, {"status": "unavailable"}))
    incident = lifecycle.open_incident(service=service, title="Disk full", entity_id="db-1")
    trigger = get(incident, "triggered")
    assert trigger.status == "pending" and trigger.response_status == 503

    lifecycle.resolve(incident)

    resolve = get(incident, "resolved")
    assert (resolve.status, resolve.attempts, resolve.last_attempt_at) == ("pending", 0, None)
    assert resolve.error.startswith(f"Waiting for the earlier 'triggered' delivery #{trigger.pk}")
    assert [r.json["event_action"] for r in http_sink.requests] == ["trigger"]

    due_now(trigger)

    assert [r.json["event_action"] for r in http_sink.requests] == [
        "trigger", "trigger", "resolve"]
    resolve.refresh_from_db()
    assert (resolve.status, resolve.attempts, resolve.error) == ("sent", 1, "")


def test_the_sweeper_leaves_a_waiting_delivery_alone(service, http_sink, deliver_inline):
    webhook(service, http_sink)
    http_sink.reply(Reply(503, {}))
    incident = lifecycle.open_incident(service=service, title="x", entity_id="e")
    lifecycle.acknowledge(incident)
    lifecycle.resolve(incident)
    # Long overdue, as waiting deliveries are, while the trigger's retry is not yet due.
    Delivery.objects.exclude(event="triggered").update(
        next_attempt_at=timezone.now() - timedelta(hours=1))

    assert sending.queue_due_deliveries() == 0
    assert len(http_sink.requests) == 1
    assert sending.send_delivery(get(incident, "resolved").pk) == (
        f"waiting for delivery #{get(incident, 'triggered').pk}")


def test_trigger_that_fails_for_good_lets_the_resolve_go_and_the_resolve_says_so(
    service, http_sink, deliver_inline, settings
):
    settings.TOCSIN_DELIVERY_MAX_ATTEMPTS = 2
    pagerduty(service, http_sink)
    http_sink.default = ACCEPTED
    http_sink.reply(Reply(503, {}), Reply(503, {}))
    incident = lifecycle.open_incident(service=service, title="x", entity_id="e")
    lifecycle.resolve(incident)
    trigger = get(incident, "triggered")

    due_now(trigger)

    trigger.refresh_from_db()
    assert (trigger.status, trigger.attempts) == ("failed", 2)
    resolve = get(incident, "resolved")
    assert resolve.status == "sent"
    assert resolve.error == f"Sent after the earlier 'triggered' delivery #{trigger.pk} failed."
    assert [r.json["event_action"] for r in http_sink.requests] == [
        "trigger", "trigger", "resolve"]


def test_a_permanent_error_on_the_trigger_lets_acknowledge_and_resolve_go_in_order(
    service, http_sink, deliver_inline
):
    webhook(service, http_sink)
    http_sink.reply(Reply(503, {}), Reply(400, {"error": "bad"}))
    incident = lifecycle.open_incident(service=service, title="x", entity_id="e")
    lifecycle.acknowledge(incident)
    lifecycle.resolve(incident)
    trigger = get(incident, "triggered")

    due_now(trigger)

    assert [r.json["event"] for r in http_sink.requests] == [
        "triggered", "triggered", "acknowledged", "resolved"]
    note = f"Sent after the earlier 'triggered' delivery #{trigger.pk} failed."
    assert get(incident, "acknowledged", status="sent").error == note
    assert get(incident, "resolved", status="sent").error == note


def test_a_later_event_that_itself_fails_keeps_the_note_after_its_error(
    service, http_sink, deliver_inline
):
    webhook(service, http_sink)
    http_sink.reply(Reply(400, {}), Reply(503, {"error": "later"}))
    incident = lifecycle.open_incident(service=service, title="x", entity_id="e")
    lifecycle.resolve(incident)

    resolve = get(incident, "resolved")
    assert resolve.status == "pending" and resolve.response_status == 503
    assert resolve.error.startswith("HTTP 503")
    assert resolve.error.endswith(
        f"Sent after the earlier 'triggered' delivery #{get(incident, 'triggered').pk} failed.")


def test_two_incidents_on_one_destination_do_not_wait_for_each_other(
    service, http_sink, deliver_inline
):
    webhook(service, http_sink)
    http_sink.reply(Reply(503, {}))
    stuck = lifecycle.open_incident(service=service, title="stuck", entity_id="a")
    other = lifecycle.open_incident(service=service, title="other", entity_id="b")
    lifecycle.resolve(other)

    assert get(stuck, "triggered").status == "pending"
    assert get(other, "triggered").status == "sent"
    assert get(other, "resolved").status == "sent"
    assert [(r.json["incident"]["id"], r.json["event"]) for r in http_sink.requests] == [
        (stuck.pk, "triggered"), (other.pk, "triggered"), (other.pk, "resolved")]


def test_two_destinations_of_one_incident_do_not_wait_for_each_other(
    service, http_sink, deliver_inline
):
    slow = webhook(service, http_sink, path="slow", name="slow")
    fine = webhook(service, http_sink, path="fine", name="fine")
    http_sink.reply(Reply(503, {}))  # the first request: the slow one's trigger
    incident = lifecycle.open_incident(service=service, title="x", entity_id="e")
    assert get(incident, "triggered", destination=slow).status == "pending"
    lifecycle.resolve(incident)

    assert get(incident, "resolved", destination=fine).status == "sent"
    assert get(incident, "resolved", destination=slow).attempts == 0
    assert [(r.path, r.json["event"]) for r in http_sink.requests] == [
        ("/slow", "triggered"), ("/fine", "triggered"), ("/fine", "resolved")]


def test_a_test_send_is_not_held_back_by_pending_deliveries(service, http_sink, deliver_inline):
    destination = webhook(service, http_sink)
    http_sink.reply(Reply(503, {}))
    lifecycle.open_incident(service=service, title="x", entity_id="e")

    test = sending.send_test(destination)

    assert test.status == "sent"
    assert [r.json["event"] for r in http_sink.requests] == ["triggered", "test"]


def test_the_sweeper_sends_a_waiting_delivery_whose_turn_came_but_was_not_queued(
    service, http_sink, deliver_inline
):
    webhook(service, http_sink)
    http_sink.reply(Reply(503, {}))
    incident = lifecycle.open_incident(service=service, title="x", entity_id="e")
    lifecycle.resolve(incident)
    # The trigger's worker recorded its success and died before queueing the resolve.
    Delivery.objects.filter(event="triggered").update(status="sent", next_attempt_at=None)
    Delivery.objects.filter(event="resolved").update(
        next_attempt_at=timezone.now() - timedelta(minutes=2))

    assert sending.queue_due_deliveries() == 1
    assert get(incident, "resolved").status == "sent"
    assert [r.json["event"] for r in http_sink.requests] == ["triggered", "resolved"]


def test_re_sending_a_failed_trigger_sends_the_resolve_again_after_it(
    service, http_sink, deliver_inline
):
    pagerduty(service, http_sink)
    http_sink.default = ACCEPTED
    http_sink.reply(Reply(400, {"status": "invalid"}))
    incident = lifecycle.open_incident(service=service, title="x", entity_id="e")
    lifecycle.resolve(incident)
    trigger = get(incident, "triggered")
    assert trigger.status == "failed" and get(incident, "resolved").status == "sent"

    assert sending.resend(trigger) is True

    # Otherwise the incident would stay open on the other side, re-triggered after its resolve.
    assert [r.json["event_action"] for r in http_sink.requests] == [
        "trigger", "resolve", "trigger", "resolve"]
    resolve = get(incident, "resolved")
    assert (resolve.status, resolve.attempts, resolve.error) == ("sent", 1, "")


def test_a_re_send_is_refused_while_a_later_delivery_of_the_pair_is_pending(
    service, http_sink, deliver_inline
):
    webhook(service, http_sink)
    http_sink.reply(Reply(400, {}), Reply(503, {}))
    incident = lifecycle.open_incident(service=service, title="x", entity_id="e")
    lifecycle.resolve(incident)
    trigger = get(incident, "triggered")
    assert get(incident, "resolved").status == "pending"

    assert sending.resend(trigger) is False

    trigger.refresh_from_db()
    assert trigger.status == "failed"
    assert len(http_sink.requests) == 2


def test_a_re_sent_acknowledge_waits_for_a_re_sent_trigger(service, http_sink, deliver_inline):
    webhook(service, http_sink)
    http_sink.reply(Reply(400, {}))
    incident = lifecycle.open_incident(service=service, title="x", entity_id="e")
    lifecycle.acknowledge(incident)
    trigger, ack = get(incident, "triggered"), get(incident, "acknowledged")
    http_sink.reply(Reply(503, {}))
    assert sending.resend(trigger) is True  # re-sends the acknowledge too; trigger: 503

    ack.refresh_from_db()
    assert (ack.status, ack.attempts) == ("pending", 0)
    assert sending.resend(ack) is False  # still pending, waiting for the trigger

    due_now(trigger)
    assert [r.json["event"] for r in http_sink.requests] == [
        "triggered", "acknowledged", "triggered", "triggered", "acknowledged"]


def test_the_api_refuses_a_re_send_while_a_later_delivery_is_pending(
    service, http_sink, deliver_inline, manager
):
    webhook(service, http_sink)
    http_sink.reply(Reply(400, {}), Reply(503, {}))
    incident = lifecycle.open_incident(service=service, title="x", entity_id="e")
    lifecycle.resolve(incident)

    response = api_client_for(manager).post(
        f"/api/v1/deliveries/{get(incident, 'triggered').pk}/resend/")

    assert response.status_code == 409
    assert "later" in response.json()["detail"]


def test_a_waiting_delivery_shows_as_waiting_in_the_api_and_the_delivery_log(
    service, http_sink, deliver_inline, manager, client
):
    webhook(service, http_sink)
    http_sink.reply(Reply(503, {}))
    incident = lifecycle.open_incident(service=service, title="x", entity_id="e")
    lifecycle.resolve(incident)
    trigger, resolve = get(incident, "triggered"), get(incident, "resolved")

    listed = api_client_for(manager).get(f"/api/v1/deliveries/?incident={incident.pk}").json()

    rows = {row["event"]: row for row in listed["results"]}
    assert (rows["resolved"]["status"], rows["resolved"]["waiting"]) == ("pending", True)
    assert f"delivery #{trigger.pk}" in rows["resolved"]["error"]
    assert rows["triggered"]["waiting"] is False  # pending too, but being retried
    client.force_login(manager)
    page = client.get(reverse("admin:destinations_delivery_change", args=[resolve.pk]))
    assert "Waiting" in page.content.decode()
    log = client.get(reverse("admin:destinations_delivery_changelist")).content.decode()
    assert log.count("tocsin-badge--waiting") == 1
    incident_page = client.get(reverse("admin:incidents_incident_change", args=[incident.pk]))
    assert incident_page.content.decode().count("tocsin-badge--waiting") == 1


def test_re_sending_a_trigger_and_its_resolve_from_the_delivery_log_sends_them_in_order(
    service, http_sink, deliver_inline, manager, client, django_capture_on_commit_callbacks
):
    webhook(service, http_sink)
    http_sink.reply(Reply(400, {}))
    incident = lifecycle.open_incident(service=service, title="x", entity_id="e")
    lifecycle.resolve(incident)
    selected = [get(incident, "resolved").pk, get(incident, "triggered").pk]
    client.force_login(manager)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:destinations_delivery_changelist"), {
            "action": "resend_selected", "_selected_action": selected,
        }, follow=True)

    assert "2 delivery(ies) queued" in response.content.decode()
    assert [r.json["event"] for r in http_sink.requests] == [
        "triggered", "resolved", "triggered", "resolved"]
    assert set(Delivery.objects.values_list("status", "attempts")) == {("sent", 1)}
