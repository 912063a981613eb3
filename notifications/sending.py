"""Sending recorded notifications: claim, send through Django's mail framework, record.

Same rules as destination deliveries: one worker wins the claim (a conditional UPDATE),
connection trouble and 4xx SMTP replies are retried with backoff, refusals are final, and
a minute sweeper queues whatever is due and unclaimed.
"""

from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import F, Q
from django.utils import timezone

from destinations.delivery import SWEEP_GRACE_SECONDS, backoff_seconds
from destinations.http import DeliveryError
from destinations.kinds.email import send_mail
from notifications import queue
from notifications.models import Notification

CLAIM_SECONDS = 300
Status = Notification.Status


def claim(notification_id: int) -> bool:
    now = timezone.now()
    return bool(
        Notification.objects.filter(pk=notification_id, status=Status.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=now + timedelta(seconds=CLAIM_SECONDS),
                attempts=F("attempts") + 1)
    )


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
    if not claim(notification_id):
        return "not due or already taken"
    notification = Notification.objects.get(pk=notification_id)
    try:
        send_mail(build(notification))
    except DeliveryError as exc:
        return record_failure(notification, exc)
    Notification.objects.filter(pk=notification_id).update(
        status=Status.SENT, sent_at=timezone.now(), claimed_until=None, error="",
        next_attempt_at=None,
    )
    return "sent"


def record_failure(notification: Notification, error: DeliveryError) -> str:
    outcome = {"claimed_until": None, "error": str(error)[:5000]}
    if not error.permanent and notification.attempts < settings.TOCSIN_DELIVERY_MAX_ATTEMPTS:
        due = timezone.now() + timedelta(
            seconds=backoff_seconds(notification.attempts, error.retry_after))
        Notification.objects.filter(pk=notification.pk).update(next_attempt_at=due, **outcome)
        queue.schedule_retry(notification.pk, due)
        return f"retry at {due.isoformat()}"
    Notification.objects.filter(pk=notification.pk).update(
        status=Status.FAILED, next_attempt_at=None, **outcome)
    return "failed"


def resend(notification: Notification) -> bool:
    changed = Notification.objects.filter(
        pk=notification.pk, status__in=[Status.SENT, Status.FAILED]
    ).update(status=Status.PENDING, next_attempt_at=timezone.now(), claimed_until=None, error="")
    if changed:
        queue.enqueue(notification.pk)
    return bool(changed)


def queue_due_notifications(limit: int = 1000) -> int:
    now = timezone.now()
    overdue = now - timedelta(seconds=SWEEP_GRACE_SECONDS)  # fresh ones are still queued
    due = list(
        Notification.objects.filter(status=Status.PENDING, next_attempt_at__lte=overdue)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .order_by("next_attempt_at").values_list("pk", flat=True)[:limit]
    )
    for notification_id in due:
        queue.enqueue(notification_id)
    return len(due)
