"""Sending recorded notifications: claim, send through Django's mail framework, record.

Same rules as destination deliveries: one worker wins the claim (a conditional UPDATE),
connection trouble and 4xx SMTP replies are retried with backoff, refusals are final, and
a minute sweeper queues whatever is due and unclaimed.
"""

import logging

from django.core.mail import EmailMultiAlternatives
from django.utils import timezone

from notifications import queue
from notifications.models import Notification
from tocsin import outbox
from tocsin.transport import TransportError
from tocsin.transport.mail import send_mail

logger = logging.getLogger(__name__)

Status = Notification.Status


def build(notification: Notification) -> EmailMultiAlternatives:
    to, bcc = ([], notification.recipients) if notification.bcc else \
        (notification.recipients, [])
    mail = EmailMultiAlternatives(
        subject=notification.subject, body=notification.body_text, to=to, bcc=bcc,
        headers={"X-Tocsin-Notification": notification.dedup_key},
    )
    if notification.body_html:
        mail.attach_alternative(notification.body_html, "text/html")
    return mail


def send_notification(notification_id: int) -> str:
    if not outbox.claim(Notification, notification_id):
        return "not due or already taken"
    notification = Notification.objects.get(pk=notification_id)
    try:
        send_mail(build(notification))
    except TransportError as exc:
        return record_failure(notification, exc)
    except Exception as exc:
        # A bug or an unexpected backend error: record it (never leave the row claimed
        # and pending with no error), a person can re-send after a fix.
        logger.exception("Notification %s raised unexpectedly", notification_id)
        return record_failure(
            notification, TransportError(f"{exc.__class__.__name__}: {exc}", permanent=True))
    Notification.objects.filter(pk=notification_id).update(
        status=Status.SENT, sent_at=timezone.now(), claimed_until=None, error="",
        next_attempt_at=None,
    )
    return "sent"


def record_failure(notification: Notification, error: TransportError) -> str:
    due = outbox.retry_or_fail(Notification, notification, error, queue.schedule_retry)
    return "failed" if due is None else f"retry at {due.isoformat()}"


def resend(notification: Notification) -> bool:
    reopened = outbox.reopen(Notification, notification.pk)
    if reopened:
        queue.enqueue(notification.pk)
    return reopened


def queue_due_notifications(limit: int = 1000) -> int:
    """Sweeper: queue again the notifications whose task was lost (see tocsin.outbox)."""
    due = outbox.overdue_ids(Notification, limit)
    for notification_id in due:
        queue.enqueue(notification_id)
    return len(due)
