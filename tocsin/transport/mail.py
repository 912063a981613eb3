"""Sending one email through Django's mail framework (SMTP, or any anymail backend set in
EMAIL_BACKEND), for every app: destination email kinds and the portal's own notifications.

Errors are classified like HTTP ones: a refused recipient or a 5xx SMTP reply is permanent,
a connection problem or a 4xx reply is retried.

What a successful send returns (docs/destinations.md, "What an email delivery records"):

- an anymail backend reports the provider's answer on ``mail.anymail_status``: its message
  id becomes ``remote_id``, the HTTP status of the provider's API (when the backend exposes
  one) ``status``, and the body names the provider's status and how many recipients it
  accepted;
- every other backend (SMTP above all) reports nothing per message through Django: only that
  the server took the message without an error, which in SMTP is reply 250 to DATA. So the
  status is 250, the body counts the recipients handed over, and ``remote_id`` is the
  Message-ID header, set here beforehand, because Django would otherwise make one up while
  sending and keep it nowhere.
"""

import smtplib

from anymail.backends.base import AnymailBaseBackend
from anymail.exceptions import (
    AnymailAPIError,
    AnymailError,
    AnymailInvalidAddress,
    AnymailRecipientsRefused,
)
from django.core.mail import EmailMessage
from django.core.mail.message import make_msgid
from django.core.mail.utils import DNS_NAME

from tocsin.transport import Result, TransportError

# SMTP's reply to DATA when the server has taken responsibility for the message
# (RFC 5321 4.2.2); Django raises for anything else.
SMTP_ACCEPTED = 250
# anymail's per-recipient statuses meaning the provider took the message for that recipient.
ACCEPTED_STATUSES = {"sent", "queued", "scheduled"}


def send_mail(mail: EmailMessage) -> Result:
    """Send one message, returning what the mail server or provider answered; raise
    TransportError classified like an HTTP failure."""
    by_provider = isinstance(mail.get_connection(), AnymailBaseBackend)
    message_id = next((value for name, value in mail.extra_headers.items()
                       if name.lower() == "message-id"), "")
    if not by_provider and not message_id:
        # A provider assigns its own id (and some refuse a Message-ID of ours).
        message_id = mail.extra_headers["Message-ID"] = make_msgid(domain=DNS_NAME)
    try:
        mail.send()
    except smtplib.SMTPRecipientsRefused as exc:
        # Permanent only if every refusal is a 5xx; a 4xx (greylisting, full mailbox) is
        # transient (RFC 5321 4.2.1) and is retried.
        permanent = all(code >= 500 for code, _ in exc.recipients.values())
        raise TransportError(f"Recipients refused: {exc.recipients}",
                             permanent=permanent) from exc
    except smtplib.SMTPResponseException as exc:
        detail = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) \
            else str(exc.smtp_error)
        raise TransportError(f"SMTP {exc.smtp_code}: {detail}", permanent=exc.smtp_code >= 500,
                             status=exc.smtp_code) from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise TransportError(f"Mail server unreachable: {exc}", permanent=False) from exc
    # An anymail backend (EMAIL_BACKEND) reports through its own exceptions.
    except (AnymailRecipientsRefused, AnymailInvalidAddress) as exc:
        raise TransportError(f"Recipients refused: {exc}", permanent=True) from exc
    except AnymailAPIError as exc:
        status = getattr(exc, "status_code", None)
        # A 4xx other than 429 is the request's fault; throttling, 5xx and network trouble
        # pass.
        permanent = status is not None and 400 <= status < 500 and status != 429
        raise TransportError(f"Mail provider: {describe(exc)}"[:2000], permanent=permanent,
                             status=status) from exc
    except AnymailError as exc:
        raise TransportError(f"Mail provider: {describe(exc)}"[:2000], permanent=True) from exc
    if by_provider:
        return provider_result(mail)
    count = len(mail.recipients())
    return Result(SMTP_ACCEPTED,
                  f"Accepted by the mail server for {count} recipient{plural(count)}",
                  message_id)


def provider_result(mail: EmailMessage) -> Result:
    status = mail.anymail_status
    recipients = status.recipients.values()
    accepted = sum(1 for recipient in recipients if recipient.status in ACCEPTED_STATUSES)
    ids = status.message_id if isinstance(status.message_id, set) else {status.message_id}
    statuses = ", ".join(sorted(status.status or ())) or "unknown"
    # Requests-based backends keep the HTTP response; others (Amazon SES's SDK) do not.
    http_status = getattr(status.esp_response, "status_code", None)
    return Result(
        http_status if isinstance(http_status, int) else None,
        f"Accepted by the mail provider for {accepted} of {len(recipients)} "
        f"recipient{plural(len(recipients))} (status: {statuses})",
        ", ".join(sorted(str(i) for i in ids if i not in (None, ""))),
    )


def plural(count: int) -> str:
    return "" if count == 1 else "s"


def describe(exc: Exception) -> str:
    # anymail's messages describe the provider's response, and fail without one.
    try:
        return str(exc)
    except Exception:
        return str(exc.args[0]) if exc.args else exc.__class__.__name__
