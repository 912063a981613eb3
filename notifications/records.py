"""Recording a portal email before it is sent.

Every notification is a row written in the transaction of the happening it reports (where
there is one), keyed so that the same happening never produces a second email, and queued
after the commit.
"""

from dataclasses import dataclass, field

from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from notifications.models import Notification, NotificationSettings
from notifications.sending import notification_outbox


@dataclass
class Email:
    """What one notification says: a headline, labelled facts and a link."""

    subject: str
    headline: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    text: str = ""
    url: str = ""

    def render(self) -> tuple[str, str]:
        context = {"email": self}
        return (render_to_string("notifications/email.txt", context),
                render_to_string("notifications/email.html", context))


def when(moment=None) -> str:
    moment = timezone.localtime(moment or timezone.now())
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z")


def record(kind: str, event: str, key: str, email: Email, *, recipients=None,
           incident=None, ignored=(), bcc=False) -> bool:
    """Record one notification of ``kind`` to the portal's recipients for that kind (or to
    ``recipients``). Returns False when there is nobody to tell or it was already recorded.
    """
    if recipients is None:
        recipients = NotificationSettings.load().recipients_for(kind)
    recipients = list(dict.fromkeys(recipients))
    if not recipients:
        return False
    text, html = email.render()
    with transaction.atomic():  # a savepoint: a concurrent duplicate only loses this row
        _, created = Notification.objects.get_or_create(dedup_key=key[:255], defaults={
            "type": kind, "event": event, "subject": " ".join(email.subject.split())[:250],
            "body_text": text, "body_html": html, "recipients": recipients,
            "incident": incident, "ignored": list(ignored), "bcc": bcc,
            "next_attempt_at": timezone.now(),
        })
    if created:
        transaction.on_commit(lambda: queue_key(key[:255]))
    return created


def queue_key(key: str) -> None:
    notification_outbox.enqueue_pending(dedup_key=key)
