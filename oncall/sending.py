"""Messages to people (pages, tests, handoff notices): an outbox (tocsin/outbox.py).
STUB: the channels helper replaces this module."""

from oncall.models import ContactMethod, Page, PersonalNotification


def send_test(contact_method: ContactMethod, *, actor=None) -> PersonalNotification:
    """Record a test message to ``contact_method`` and send it now, in the caller's
    request (a short deadline); returns the row with its outcome (status, error)."""
    raise NotImplementedError


def page_user(incident, user, *, step: int | None = None, loop: int = 0,
              reason: str = "") -> Page:
    """Page ``user`` about ``incident``: a Page row, then one PersonalNotification per
    notification rule, due at the rule's delay (no rules: email at once to the account
    address), queued after commit."""
    raise NotImplementedError


def resend(notification: PersonalNotification) -> bool:
    """Make a sent or failed message pending again and queue it (the admin's re-send)."""
    raise NotImplementedError


def queue_due_personal_notifications(limit: int = 1000) -> int:
    """The minute sweeper: queue again the messages whose task was lost."""
    return 0
