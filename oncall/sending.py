"""Messages to people (pages, tests, handoff notices): an outbox (tocsin/outbox.py) whose
rows are PersonalNotification, sent by email, SMS, voice call or ntfy (oncall/channels/).

A page records, in one transaction, the Page, one row per notification rule of the user
(due at the page's time plus the rule's delay) and a timeline entry; after the commit the
rows due now are queued and the later ones get a one-off schedule at their due time. The
minute sweeper queues whatever is due and unclaimed, so a lost task or a broker outage
delays a message but never drops it. Each row's text is written when it is sent
(oncall/messages.py). What happens to people without rules is in docs/on-call.md
("Notification rules and pages").
"""

import re
import uuid
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from incidents.models import Incident, TimelineEntry
from oncall import channels, messages
from oncall.messages import display_name
from oncall.models import ContactMethod, NotificationRule, Page, PersonalNotification
from tocsin import taskqueue
from tocsin.actor import current_actor
from tocsin.outbox import Outbox, unclaimed
from tocsin.transport import Result, TransportError, http

Status = PersonalNotification.Status
Purpose = PersonalNotification.Purpose
Kind = ContactMethod.Kind

# How a timeline entry names each kind ("SMS to rita (+49…) sent").
KIND_WORDS = {Kind.EMAIL: "Email", Kind.SMS: "SMS", Kind.VOICE: "Voice call",
              Kind.NTFY: "ntfy push"}
# And the "Paged …" entry ("SMS at once, voice call after 5 min").
PLAN_WORDS = {Kind.EMAIL: "email", Kind.SMS: "SMS", Kind.VOICE: "voice call",
              Kind.NTFY: "ntfy push"}
ACCOUNT_EMAIL_NOTE = ("No notification rule with an enabled contact method: sent to the "
                      "account's email address.")


class PersonalNotificationOutbox(Outbox):
    model = PersonalNotification
    task = "oncall.sending.send_personal_notification"
    group = "personal-notifications"
    select_related = ("user", "incident", "incident__service", "contact_method", "page")

    def process(self, pk: int) -> str:
        if self.cancel_if_settled(pk):
            return "cancelled: no longer needed (see its error)"
        return super().process(pk)

    def send(self, row: PersonalNotification) -> Result:
        # Checked again once claimed: an acknowledgement between process()'s check and the
        # claim must still stop the message.
        reason = row.incident and row.purpose == Purpose.PAGE and settled_reason(
            PersonalNotification.objects.select_related("incident", "page", "contact_method")
            .get(pk=row.pk))
        if reason:
            raise NoLongerWanted(reason)
        message = render(row)
        # Kept on the row: what the person received, for whoever reads the record, without
        # the acknowledge link: it acts as the person, and Managers read everyone's log.
        PersonalNotification.objects.filter(pk=row.pk).update(
            subject=message.subject[:255], text=redact_links(message.text))
        return channels.send(row, message)

    def record_failure(self, row: PersonalNotification, error: TransportError, *,
                       note: str = "") -> str:
        if isinstance(error, NoLongerWanted):
            self.model.objects.filter(pk=row.pk).update(
                status=Status.CANCELLED, claimed_until=None, next_attempt_at=None,
                error=str(error))
            return "cancelled: no longer needed (see its error)"
        if row.purpose == Purpose.TEST and not error.permanent:
            # A test is tried once, while the person watches: retried for an hour, a
            # mistyped number would have a stranger's phone ring long after.
            error = TransportError(f"{error} (a test is tried once: press Send test again)",
                                   permanent=True, status=error.status, body=error.body)
        return super().record_failure(row, error, note=note)

    def note(self, row: PersonalNotification) -> str:
        if row.purpose == Purpose.PAGE and row.contact_method_id is None:
            return ACCOUNT_EMAIL_NOTE
        return ""

    def sent_fields(self, result: Result) -> dict:
        return {"response_status": result.status, "remote_id": result.remote_id[:255]}

    def failure_fields(self, error: TransportError) -> dict:
        return {"response_status": error.status}

    def on_sent(self, row: PersonalNotification, result: Result) -> None:
        add_timeline_entry(row, f"{describe(row)} sent", Status.SENT)

    def on_failed(self, row: PersonalNotification, error: TransportError) -> None:
        # The first line: Twilio's explanation without the whole answer, kept on the row.
        first_line = str(error).splitlines()[0] if str(error) else "unknown error"
        add_timeline_entry(row, f"{describe(row)} failed: {first_line[:300]}", Status.FAILED)

    def cancel_if_settled(self, pk: int) -> bool:
        """A page's message not yet sent when the incident is acknowledged or resolved is
        not sent: someone is on it. Nor is one whose contact method was disabled since.
        Cancelled with the reason; the database decides, so a row a worker has claimed
        meanwhile is left to it."""
        row = (PersonalNotification.objects.filter(pk=pk, status=Status.PENDING,
                                                   purpose=Purpose.PAGE)
               .select_related("incident", "page", "contact_method").first())
        reason = row and row.incident and settled_reason(row)
        if not reason:
            return False
        now = timezone.now()
        return bool(PersonalNotification.objects.filter(pk=pk, status=Status.PENDING)
                    .filter(unclaimed(now))
                    .update(status=Status.CANCELLED, next_attempt_at=None, error=reason))

    def schedule_due(self, pk: int, due: datetime) -> None:
        """A one-off schedule sending a delayed rule's message at its due time."""
        taskqueue.schedule_once(self.task, pk, at=due,
                                name=f"personal notification {pk} due {due:%H%M%S%f}")


personal_outbox = PersonalNotificationOutbox()

# The token part of an acknowledge link (/ack/<token>/ and the call's /ack/<token>/call/).
ACK_TOKEN = re.compile(r"/ack/[^/\s\"'<>]+/")


class NoLongerWanted(TransportError):
    """A page's message that must not go out any more (the incident was acknowledged)."""

    def __init__(self, reason: str):
        super().__init__(reason, permanent=True)


def redact_links(text: str) -> str:
    return ACK_TOKEN.sub("/ack/(link removed)/", text)


def send_personal_notification(notification_id: int) -> str:
    """The queue task. Returns what happened, for the task log."""
    return personal_outbox.process(notification_id)


def settled_reason(row: PersonalNotification) -> str:
    """Why a page's message is no longer needed, or "" while it is."""
    incident = row.incident
    if incident.status == Incident.Status.RESOLVED:
        return f"Not sent: incident #{incident.number} was resolved before this was due."
    # A page made while the incident was already acknowledged (adding a responder) runs
    # its rules until the incident is resolved.
    paged_at = row.page.created_at if row.page else row.created_at
    if incident.status == Incident.Status.ACKNOWLEDGED and incident.acknowledged_at and \
            incident.acknowledged_at >= paged_at:
        return f"Not sent: incident #{incident.number} was acknowledged before this was due."
    if row.contact_method is not None and not row.contact_method.enabled:
        return "Not sent: the contact method was disabled before this was due."
    return ""


def render(row: PersonalNotification) -> messages.Message:
    if row.purpose == Purpose.PAGE and row.incident is not None:
        return messages.page_message(row.kind, row.incident, row.user)
    # Tests and notices were written when they were recorded.
    return messages.Message(row.subject, row.text)


def describe(row: PersonalNotification) -> str:
    """"SMS to Rita Rossi (Work phone)": the method's label, never its address. Everyone who
    sees the incident reads its timeline, and addresses are their owner's (a phone number,
    an ntfy topic URL whose ``auth`` is a credential)."""
    label = row.contact_method.label if row.contact_method else ""
    return f"{KIND_WORDS.get(row.kind, row.kind)} to {display_name(row.user)}" + \
        (f" ({label})" if label else "")


def add_timeline_entry(row: PersonalNotification, message: str, status: str) -> None:
    if row.incident_id is None:
        return
    TimelineEntry.objects.create(
        incident_id=row.incident_id, kind=TimelineEntry.Kind.PAGE, message=message,
        data={"page": row.page_id, "notification": row.pk, "user": row.user_id,
              "kind": row.kind, "status": status},
    )


# Pages ----------------------------------------------------------------------------------

def page_user(incident, user, *, step: int | None = None, loop: int = 0,
              reason: str = "") -> Page:
    """Page ``user`` about ``incident``: a Page row, then one PersonalNotification per
    notification rule, due at the rule's delay (no rules: email at once to the account
    address), queued after commit."""
    with transaction.atomic():
        page = Page.objects.create(incident=incident, user=user, step=step, loop=loop,
                                   reason=reason[:255])
        rows = record_page_notifications(page)
        if step is None:
            # Paged by hand: one more person on it (an escalation step replaces the list).
            incident.assignees.add(user)
        TimelineEntry.objects.create(
            incident=incident, kind=TimelineEntry.Kind.PAGE, actor=current_actor(),
            message=paged_message(page, rows),
            data={"page": page.pk, "user": user.pk, "step": step, "loop": loop},
        )
        skipped = skipped_rules_message(page)
        if skipped:
            TimelineEntry.objects.create(
                incident=incident, kind=TimelineEntry.Kind.PAGE, message=skipped,
                data={"page": page.pk, "user": user.pk, "skipped": True})
        transaction.on_commit(lambda: queue_page(page.pk))
    return page


def record_page_notifications(page: Page) -> list[PersonalNotification]:
    """The page's messages, one per rule of the user with an enabled contact method, each
    due at the page's time plus the rule's delay; recording them again adds nothing (each
    has a dedup key). A user with no such rule is emailed at the account address at once;
    a user with no email address either gets a failed row saying nobody was reached."""
    user, paged_at = page.user, page.created_at
    rules = NotificationRule.objects.filter(user=user, contact_method__user=user,
                                            contact_method__enabled=True) \
        .select_related("contact_method")
    planned = [
        PersonalNotification(
            user=user, contact_method=rule.contact_method, kind=rule.contact_method.kind,
            address=rule.contact_method.address, purpose=Purpose.PAGE, page=page,
            incident_id=page.incident_id, delay_minutes=rule.delay_minutes,
            next_attempt_at=paged_at + timedelta(minutes=rule.delay_minutes),
            dedup_key=f"page:{page.pk}:rule:{rule.pk}",
        )
        for rule in rules
    ]
    if not planned:
        planned = [account_email_notification(page)]
    PersonalNotification.objects.bulk_create(planned, ignore_conflicts=True)
    return list(PersonalNotification.objects.filter(page=page).order_by("next_attempt_at", "id"))


def skipped_rules_message(page: Page) -> str:
    """A rule whose contact method is disabled sends nothing; the timeline says so, so
    nobody wonders why the phone stayed quiet. "" when no rule was skipped."""
    skipped = NotificationRule.objects.filter(
        user=page.user, contact_method__user=page.user, contact_method__enabled=False
    ).select_related("contact_method").order_by("delay_minutes", "id")
    words = [f"{PLAN_WORDS[rule.contact_method.kind]}"
             + (f" ({rule.contact_method.label})" if rule.contact_method.label else "")
             + (f" after {rule.delay_minutes} min" if rule.delay_minutes else " at once")
             for rule in skipped]
    if not words:
        return ""
    return (f"Not sent to {display_name(page.user)}: {', '.join(words)}: the contact "
            f"method{'s are' if len(words) > 1 else ' is'} disabled")


def account_email_notification(page: Page) -> PersonalNotification:
    user = page.user
    row = PersonalNotification(
        user=user, kind=Kind.EMAIL, address=user.email, purpose=Purpose.PAGE, page=page,
        incident_id=page.incident_id, next_attempt_at=page.created_at,
        dedup_key=f"page:{page.pk}:account-email",
    )
    if not user.email:
        # Nothing to send to: recorded as failed at once, so the timeline and the records
        # say that this person was not reached, instead of nothing at all.
        row.status, row.next_attempt_at = Status.FAILED, None
        row.error = (f"{display_name(user)} has no notification rule with an enabled "
                     "contact method and no email address: nobody was notified. Add a "
                     "contact method under My profile.")
    return row


def paged_message(page: Page, rows: list[PersonalNotification]) -> str:
    name = display_name(page.user)
    why = f": {page.reason}" if page.reason else ""
    if len(rows) == 1 and rows[0].status == Status.FAILED:
        return f"Paged {name}{why}, but nobody was notified: no contact method and no email address"
    if rows and rows[0].contact_method_id is None:
        plan = "email to the account address at once"
    else:
        plan = ", ".join(f"{PLAN_WORDS[row.kind]} " + (
            f"after {row.delay_minutes} min" if row.delay_minutes else "at once")
            for row in rows)
    return f"Paged {name}{why} ({plan})"


def queue_page(page_id: int) -> None:
    """After the page's commit: queue what is due now, schedule the rest for its time."""
    now = timezone.now()
    pending = PersonalNotification.objects.filter(page_id=page_id, status=Status.PENDING)
    for pk, due in pending.order_by("next_attempt_at", "pk").values_list("pk", "next_attempt_at"):
        if due is None or due <= now:
            personal_outbox.enqueue(pk)
        else:
            personal_outbox.schedule_due(pk, due)


# Tests, re-sends, the sweeper ----------------------------------------------------------

def send_test(contact_method: ContactMethod, *, actor=None) -> PersonalNotification:
    """Record a test message to ``contact_method`` and send it now, in the caller's
    request (a short deadline); returns the row with its outcome (status, error). A
    retryable failure is retried like any message."""
    message = messages.message_for_test(contact_method.kind, contact_method.user, actor=actor)
    row = PersonalNotification.objects.create(
        user=contact_method.user, contact_method=contact_method, kind=contact_method.kind,
        address=contact_method.address, purpose=Purpose.TEST, subject=message.subject,
        text=message.text, dedup_key=f"test:{contact_method.pk}:{uuid.uuid4().hex}",
        next_attempt_at=timezone.now(),
    )
    with http.shorter_deadline(http.TEST_SEND_DEADLINE_SECONDS):
        send_personal_notification(row.pk)
    row.refresh_from_db()
    return row


def cancel_messages_of_deleted_method(sender, instance: ContactMethod, **kwargs) -> None:
    """pre_delete of a contact method: its messages still waiting are not sent (the rows
    keep the address they were recorded with, so they would otherwise still go out)."""
    PersonalNotification.objects.filter(contact_method=instance, status=Status.PENDING) \
        .filter(unclaimed(timezone.now())).update(
            status=Status.CANCELLED, next_attempt_at=None,
            error="Not sent: the contact method was deleted before this was due.")


def resend(notification: PersonalNotification) -> bool:
    """Make a sent or failed message pending again and queue it (the admin's re-send)."""
    reopened = personal_outbox.reopen([notification.pk]) == 1
    if reopened:
        personal_outbox.enqueue_on_commit(notification.pk)
    return reopened


def queue_due_personal_notifications(limit: int = 1000) -> int:
    """The minute sweeper: queue again the messages whose task was lost."""
    return personal_outbox.sweep(limit)
