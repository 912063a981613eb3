"""Paging a person: a Page and one message per notification rule, each at its delay, sent
through the outbox, with the timeline saying who was paged and how it went."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.utils import timezone

from incidents import lifecycle
from oncall import sending
from oncall.models import ContactMethod, NotificationRule, Page, PersonalNotification
from oncall.sending import (
    page_user,
    personal_outbox,
    queue_due_personal_notifications,
    record_page_notifications,
    resend,
    send_personal_notification,
    send_test,
)
from tests.conftest import make_user
from tests.sinks import Reply

Status = PersonalNotification.Status


@pytest.fixture
def rita(db):
    user = make_user("rita", "Responder")
    user.email = "rita@example.com"
    user.first_name, user.last_name = "Rita", "Rossi"
    user.save()
    return user


def rule(user, kind, address, delay, *, enabled=True):
    method = ContactMethod.objects.create(user=user, kind=kind, address=address,
                                          enabled=enabled)
    return user.notification_rules.create(contact_method=method, delay_minutes=delay)


def entries(incident):
    return list(incident.timeline.filter(kind="page").values_list("message", flat=True))


def make_due(row):
    PersonalNotification.objects.filter(pk=row.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_rules_at_0_and_5_minutes_send_one_now_and_schedule_the_other_5_minutes_later(
        inline, deliver_inline, incident, rita, http_sink):
    rule(rita, "ntfy", f"{http_sink.url}/rita", 0)
    rule(rita, "email", "rita.home@example.com", 5)

    page = inline(page_user, incident, rita, step=1, reason="Escalation step 1")

    now_row, later_row = page.notifications.order_by("delay_minutes")
    assert (now_row.kind, now_row.status, now_row.attempts) == ("ntfy", Status.SENT, 1)
    assert (later_row.kind, later_row.status, later_row.attempts) == ("email", Status.PENDING, 0)
    assert later_row.next_attempt_at == page.created_at + timedelta(minutes=5)
    assert now_row.next_attempt_at is None and later_row.delay_minutes == 5
    assert deliver_inline == [(later_row.pk, later_row.next_attempt_at)]
    assert len(http_sink.requests) == 1 and mail.outbox == []
    assert later_row.text == ""  # written when it is sent
    assert (page.step, page.loop, page.reason) == (1, 0, "Escalation step 1")


def test_a_delayed_rule_is_sent_at_its_time_with_a_freshly_signed_link(
        inline, incident, rita, settings):
    settings.TOCSIN_PUBLIC_URL = "https://tocsin.example.com"
    rule(rita, "email", "rita.home@example.com", 30)
    page = inline(page_user, incident, rita)
    [row] = page.notifications.all()

    assert send_personal_notification(row.pk) == "not due or already taken"
    make_due(row)
    assert send_personal_notification(row.pk) == "sent"

    [message] = mail.outbox
    assert message.to == ["rita.home@example.com"]
    row.refresh_from_db()
    assert row.status == Status.SENT and "https://tocsin.example.com/ack/" in row.text


def test_a_user_without_rules_is_emailed_at_once_at_the_account_address(
        inline, incident, rita):
    page = inline(page_user, incident, rita)

    [row] = page.notifications.all()
    assert (row.kind, row.address, row.contact_method, row.status) == (
        "email", "rita@example.com", None, Status.SENT)
    [message] = mail.outbox
    assert message.to == ["rita@example.com"]
    assert message.subject == f"[Tocsin] #{incident.number} triggered: Disk full on db-1"
    assert row.error == sending.ACCOUNT_EMAIL_NOTE
    assert entries(incident) == [
        "Paged Rita Rossi (email to the account address at once)",
        "Email to Rita Rossi sent",
    ]


def test_rules_whose_contact_methods_are_all_disabled_fall_back_to_the_account_email(
        inline, incident, rita):
    rule(rita, "sms", "+4915112345678", 0, enabled=False)

    page = inline(page_user, incident, rita)

    [row] = page.notifications.all()
    assert (row.kind, row.address, row.status) == ("email", "rita@example.com", Status.SENT)


def test_only_the_enabled_methods_run_when_some_are_disabled(inline, incident, rita):
    rule(rita, "sms", "+4915112345678", 0, enabled=False)
    rule(rita, "email", "rita.work@example.com", 0)

    page = inline(page_user, incident, rita)

    assert list(page.notifications.values_list("address", flat=True)) == [
        "rita.work@example.com"]


def test_a_user_with_no_rules_and_no_email_is_recorded_as_not_reached(inline, incident):
    nobody = make_user("nora", "Responder")

    page = inline(page_user, incident, nobody)

    [row] = page.notifications.all()
    assert row.status == Status.FAILED and row.attempts == 0
    assert "no email address: nobody was notified" in row.error
    assert entries(incident) == [
        "Paged nora, but nobody was notified: no contact method and no email address"]


def test_the_timeline_says_who_was_paged_how_and_how_each_message_went(
        inline, deliver_inline, incident, rita, http_sink, settings):
    settings.TOCSIN_TWILIO_ACCOUNT_SID = ""
    settings.TOCSIN_TWILIO_AUTH_TOKEN = settings.TOCSIN_TWILIO_FROM = "set"
    rule(rita, "ntfy", f"{http_sink.url}/rita", 0)
    rule(rita, "sms", "+4915112345678", 0)
    rule(rita, "voice", "+4915112345678", 10)

    inline(page_user, incident, rita, reason="On call for Checkout")

    assert entries(incident) == [
        "Paged Rita Rossi: On call for Checkout (ntfy push at once, SMS at once, "
        "voice call after 10 min)",
        "ntfy push to Rita Rossi sent",
        "SMS to Rita Rossi failed: Twilio is not configured: set "
        "TOCSIN_TWILIO_ACCOUNT_SID (docs/on-call.md#setting-up-twilio-and-ntfy)",
    ]
    page_entry = incident.timeline.filter(kind="page").first()
    assert page_entry.data["user"] == rita.pk


def test_recording_the_same_page_twice_adds_no_second_message(incident, rita):
    rule(rita, "email", "rita.work@example.com", 0)
    rule(rita, "email", "rita.home@example.com", 5)
    page = Page.objects.create(incident=incident, user=rita)

    first = record_page_notifications(page)
    second = record_page_notifications(page)

    assert [row.pk for row in first] == [row.pk for row in second]
    assert PersonalNotification.objects.filter(page=page).count() == 2


def test_messages_still_due_when_the_incident_is_acknowledged_are_not_sent(
        inline, incident, rita):
    rule(rita, "email", "rita.work@example.com", 0)
    rule(rita, "email", "rita.home@example.com", 15)
    page = inline(page_user, incident, rita)
    lifecycle.acknowledge(incident, actor=rita)
    later = page.notifications.get(delay_minutes=15)
    # Cancelled by the acknowledgement itself, not only when it falls due.
    assert later.status == Status.CANCELLED
    make_due(later)

    assert send_personal_notification(later.pk) == "not due or already taken"

    later.refresh_from_db()
    assert later.status == Status.CANCELLED
    assert later.error == (f"Not sent: incident #{incident.number} was acknowledged before "
                           "this was due.")
    assert [m.to for m in mail.outbox] == [["rita.work@example.com"]]


def test_a_page_made_while_the_incident_is_acknowledged_still_reaches_the_person(
        inline, incident, rita):
    lifecycle.acknowledge(incident)
    rule(rita, "email", "rita.work@example.com", 0)

    page = inline(page_user, incident, rita, reason="Adding a responder")

    assert page.notifications.get().status == Status.SENT


def test_a_resolved_incident_stops_the_messages_of_every_page(inline, incident, rita):
    lifecycle.acknowledge(incident)
    rule(rita, "email", "rita.work@example.com", 5)
    page = inline(page_user, incident, rita)
    lifecycle.resolve(incident)
    row = page.notifications.get()
    make_due(row)

    send_personal_notification(row.pk)

    row.refresh_from_db()
    assert row.status == Status.CANCELLED and "was resolved" in row.error
    assert mail.outbox == []


def test_send_test_sends_at_once_and_returns_the_outcome(rita, manager, http_sink):
    method = ContactMethod.objects.create(user=rita, kind="ntfy",
                                          address=f"{http_sink.url}/rita")

    row = send_test(method, actor=manager)

    assert (row.purpose, row.status, row.attempts, row.response_status) == (
        "test", Status.SENT, 1, 200)
    [request] = http_sink.requests
    assert request.body.decode().startswith("This is a test message from Tocsin to "
                                            "Rita Rossi")
    assert request.body.decode().endswith("Sent at the request of max.")
    assert request.headers["title"] == "[Tocsin] Test message"
    assert request.headers["priority"] == "3" and "click" not in request.headers
    assert row.text == request.body.decode() and row.incident is None


def test_send_test_reports_a_failure(rita, http_sink):
    http_sink.reply(Reply(403, {"error": "forbidden"}))
    method = ContactMethod.objects.create(user=rita, kind="ntfy",
                                          address=f"{http_sink.url}/rita")

    row = send_test(method)

    assert row.status == Status.FAILED and row.response_status == 403
    assert "HTTP 403" in row.error


def test_resend_makes_a_failed_message_pending_and_sends_it_again(
        inline, incident, rita, http_sink):
    http_sink.reply(Reply(403, {"error": "forbidden"}))
    rule(rita, "ntfy", f"{http_sink.url}/rita", 0)
    page = inline(page_user, incident, rita)
    row = page.notifications.get()
    assert row.status == Status.FAILED

    assert inline(resend, row) is True

    row.refresh_from_db()
    assert row.status == Status.SENT and row.attempts == 1 and row.error == ""
    assert len(http_sink.requests) == 2
    assert inline(resend, PersonalNotification(pk=row.pk + 1000)) is False


def test_the_sweeper_queues_messages_whose_task_was_lost(deliver_inline, incident, rita):
    rule(rita, "email", "rita.work@example.com", 0)
    # The page's commit never came to queue it (a broker outage): nothing was sent.
    page = page_user(incident, rita)
    row = page.notifications.get()
    PersonalNotification.objects.filter(pk=row.pk).update(
        next_attempt_at=timezone.now() - timedelta(minutes=2))

    assert queue_due_personal_notifications() == 1

    row.refresh_from_db()
    assert row.status == Status.SENT and len(mail.outbox) == 1


def test_a_rule_pointing_at_someone_elses_contact_method_is_ignored(inline, incident, rita):
    other = User.objects.create_user("oscar", email="oscar@example.com")
    method = ContactMethod.objects.create(user=other, kind="email", address="o@example.com")
    rita.notification_rules.create(contact_method=method, delay_minutes=0)

    page = inline(page_user, incident, rita)

    assert list(page.notifications.values_list("address", flat=True)) == ["rita@example.com"]


def test_a_contact_method_disabled_before_its_rule_is_due_is_not_used(inline, incident, rita):
    later = rule(rita, "email", "rita.home@example.com", 10)
    page = inline(page_user, incident, rita)
    ContactMethod.objects.filter(pk=later.contact_method_id).update(enabled=False)
    row = page.notifications.get()
    make_due(row)

    send_personal_notification(row.pk)

    row.refresh_from_db()
    assert row.status == Status.CANCELLED and "contact method was disabled" in row.error
    assert mail.outbox == []


def test_the_sweeper_leaves_a_delayed_rule_alone_until_it_is_due(deliver_inline, incident,
                                                                 rita):
    rule(rita, "email", "rita.home@example.com", 30)
    page_user(incident, rita)

    assert queue_due_personal_notifications() == 0
    assert mail.outbox == [] and deliver_inline == []


def test_the_stored_text_keeps_no_working_acknowledge_link(inline, incident, rita):
    rule(rita, "email", "rita.work@example.com", 0)
    page = inline(page_user, incident, rita)
    row = page.notifications.get()
    [sent] = mail.outbox
    assert "/ack/" in sent.body
    link = next(word for word in sent.body.split() if "/ack/" in word)
    # The person got the link; the record everyone's log shows does not carry it.
    assert link not in row.text and "/ack/(link removed)/" in row.text


def test_timeline_entries_name_the_method_by_its_label_never_its_address(inline, incident,
                                                                        rita):
    method = ContactMethod.objects.create(user=rita, kind="email", label="Work mail",
                                          address="rita.work@example.com")
    NotificationRule.objects.create(user=rita, contact_method=method, delay_minutes=0)
    inline(page_user, incident, rita)
    messages = list(incident.timeline.filter(kind="page").values_list("message", flat=True))
    assert any(message.startswith("Email to Rita Rossi (Work mail) sent") for message in messages)
    assert not any("rita.work@example.com" in message for message in messages)


def test_an_acknowledgement_after_the_claim_but_before_the_send_still_stops_it(
        incident, rita, monkeypatch):
    rule(rita, "email", "rita.work@example.com", 0)
    page = page_user(incident, rita)
    row = page.notifications.get()
    real_claim = personal_outbox.claim

    def claim_then_someone_acknowledges(pk):
        # The acknowledgement cancels waiting messages, but not one a worker holds: the
        # worker checks again before sending.
        claimed = real_claim(pk)
        lifecycle.acknowledge(incident)
        return claimed

    monkeypatch.setattr(personal_outbox, "claim", claim_then_someone_acknowledges)
    assert send_personal_notification(row.pk).startswith("cancelled")
    row.refresh_from_db()
    assert row.status == Status.CANCELLED and "was acknowledged" in row.error
    assert mail.outbox == []


def test_a_test_message_is_tried_once_even_when_the_error_is_temporary(rita, http_sink):
    http_sink.default = Reply(503, {"error": "down"})
    method = ContactMethod.objects.create(user=rita, kind="ntfy",
                                          address=f"{http_sink.url}/rita")
    row = send_test(method)
    assert (row.status, row.attempts, row.next_attempt_at) == (Status.FAILED, 1, None)
    assert "a test is tried once" in row.error
    assert queue_due_personal_notifications() == 0


def test_deleting_a_contact_method_cancels_its_waiting_messages(inline, incident, rita):
    rule(rita, "email", "rita.work@example.com", 0)
    later = rule(rita, "email", "rita.home@example.com", 15)
    page = inline(page_user, incident, rita)
    later.contact_method.delete()
    row = page.notifications.get(delay_minutes=15)
    make_due(row)
    assert send_personal_notification(row.pk).startswith("not due")
    row.refresh_from_db()
    assert row.status == Status.CANCELLED and "was deleted" in row.error
    assert [m.to for m in mail.outbox] == [["rita.work@example.com"]]
