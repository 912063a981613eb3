"""Sending recorded notifications: an outbox (tocsin/outbox.py) whose rows are emails sent
through Django's mail framework.

Same rules as destination deliveries: one worker wins the claim (a conditional UPDATE),
connection trouble and 4xx SMTP replies are retried with backoff, refusals are final, and
a minute sweeper queues whatever is due and unclaimed.
"""

from django.core.mail import EmailMultiAlternatives

from notifications.models import Notification
from tocsin.outbox import Outbox
from tocsin.transport import Result
from tocsin.transport.mail import send_mail

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


class NotificationOutbox(Outbox):
    model = Notification
    task = "notifications.sending.send_notification"
    group = "notifications"

    def send(self, notification: Notification) -> Result:
        return send_mail(build(notification))


notification_outbox = NotificationOutbox()


def send_notification(notification_id: int) -> str:
    """The queue task. Returns what happened, for the task log."""
    return notification_outbox.process(notification_id)


def resend(notification: Notification) -> bool:
    reopened = notification_outbox.reopen([notification.pk]) == 1
    if reopened:
        notification_outbox.enqueue_on_commit(notification.pk)
    return reopened


def queue_due_notifications(limit: int = 1000) -> int:
    """The minute sweeper's task: queue again the notifications whose task was lost."""
    return notification_outbox.sweep(limit)
