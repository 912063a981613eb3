"""Receiving alert mail (PRODUCT.md §3.3) from django-anymail's inbound webhooks (the
`inbound` signal) and from `manage.py ingest_email` (a local MTA's pipe).

Both take the same path: find the integration the recipient address names, store the raw
message as an inbound event (rejected, with the reason, when no enabled integration has the
address or the message is too large), and queue it for processing once the transaction
commits, as the HTTP ingest views do.
"""

import logging
from email.utils import getaddresses

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from integrations import queue
from integrations.models import InboundEvent, Integration

logger = logging.getLogger(__name__)

SOURCE = "email"
# Where a recipient is looked for when the sender gives no envelope recipient, in order.
RECIPIENT_HEADERS = ["Delivered-To", "X-Original-To", "To", "Cc"]
# The database cannot take the message now: the sender should try again later.
STORAGE_ERRORS = (OperationalError, InterfaceError)


def header_recipients(message) -> list[str]:
    """Addresses of the recipient headers, without duplicates, in RECIPIENT_HEADERS order."""
    found: list[str] = []
    for name in RECIPIENT_HEADERS:
        # Parsed as text: the email package knows Delivered-To as no address header.
        values = [str(value) for value in message.get_all(name) or []]
        for _, address in getaddresses(values):
            if "@" in address and address not in found:
                found.append(address)
    return found


def local_part(address: str) -> str | None:
    """The integration part of an address at TOCSIN_INBOUND_EMAIL_DOMAIN, else None.

    Case-insensitive; `+anything` after the local part is ignored (plus addressing), so a
    sender may tag its mail without changing where it goes.
    """
    local, _, domain = address.strip().strip("<>").rpartition("@")
    if not local or domain.lower() != settings.TOCSIN_INBOUND_EMAIL_DOMAIN.lower():
        return None
    return local.strip('"').lower().split("+", 1)[0]


def find_integration(addresses: list[str]) -> tuple[Integration | None, str]:
    """The email integration of the first address that has one (enabled or not)."""
    for address in addresses:
        local = local_part(address)
        if not local:
            continue
        integration = (
            Integration.objects.select_related("service")
            .filter(kind=Integration.Kind.EMAIL, email_local_part=local).first()
        )
        if integration is not None:
            return integration, address
    return None, ""


def rejection(integration: Integration | None, addresses: list[str], size: int) -> str:
    """Why the message cannot become an alert, or '' when it can."""
    domain = settings.TOCSIN_INBOUND_EMAIL_DOMAIN
    if integration is None:
        if not addresses:
            return "The message names no recipient (envelope, Delivered-To, To or Cc)."
        return (
            f"No email integration has the address {', '.join(addresses)[:500]} "
            f"(addresses are at {domain}; a regenerated address replaces the old one)."
        )
    if not integration.is_enabled:
        return f"The integration {integration.name!r} ({integration.email_address}) is disabled."
    limit = settings.TOCSIN_MAX_BODY_BYTES
    if size > limit:
        return (
            f"The message is {size} bytes, over the limit of {limit} bytes "
            f"(TOCSIN_MAX_BODY_BYTES); its first {limit} bytes are kept."
        )
    return ""


def store_mail(
    raw: bytes, *, recipients: list[str], via: str, sender: str = "", size: int | None = None
) -> InboundEvent:
    """Store one received message as an inbound event and queue it, or record it rejected.

    `recipients` are the candidate addresses, best first; `size` is the full size when the
    caller kept only the start of a large message. Database errors propagate, so the sender
    (ESP or MTA) retries later: nothing is lost while the database is down.
    """
    size = len(raw) if size is None else size
    integration, address = find_integration(recipients)
    error = rejection(integration, recipients, size)
    headers = {
        "Recipient": address or ", ".join(recipients)[:1000],
        "Envelope-Sender": sender or "",
        "Received-Via": via,
    }
    limit = settings.TOCSIN_MAX_BODY_BYTES
    with transaction.atomic():
        event = InboundEvent.objects.create(
            integration=integration, source=SOURCE, body=raw[:limit], headers=headers,
            status=InboundEvent.Status.REJECTED if error else InboundEvent.Status.QUEUED,
            error=error, enqueued_at=None if error else timezone.now(),
        )
        if not error:
            transaction.on_commit(lambda: queue.enqueue(event))
    if error:
        logger.warning("Inbound mail via %s rejected (event %s): %s", via, event.trace_id, error)
    return event


def message_bytes(message) -> bytes:
    """The RFC 822 bytes of a message parsed or built by anymail."""
    try:
        return message.as_bytes()
    except Exception:
        # A header the generator cannot re-encode: keep what it can write as text.
        return message.as_string().encode("utf-8", errors="replace")


def receive_anymail(sender, event, esp_name, **kwargs) -> None:
    """Receiver of anymail's `inbound` signal, sent by /anymail/<esp>/inbound/.

    A problem with the mail never raises: anymail would answer 500 and the ESP would send
    the same mail again and again. Only a database that cannot store it raises, so the ESP
    retries later instead of the mail being lost.
    """
    message = event.message
    try:
        envelope = message.envelope_recipient
        recipients = [envelope] if envelope else header_recipients(message)
        store_mail(
            message_bytes(message), recipients=recipients, via=esp_name,
            sender=message.envelope_sender or "",
        )
    except STORAGE_ERRORS:
        logger.exception("Inbound mail via %s could not be stored; the ESP will retry", esp_name)
        raise
    except Exception as exc:
        logger.exception("Inbound mail via %s could not be read", esp_name)
        record_unreadable(message, esp_name, exc)


def record_unreadable(message, via: str, exc: Exception) -> None:
    """Keep what can be kept of a message that broke receiving, so it is not lost unseen."""
    try:
        body = message_bytes(message)[: settings.TOCSIN_MAX_BODY_BYTES]
    except Exception:
        body = b""
    try:
        InboundEvent.objects.create(
            source=SOURCE, body=body, headers={"Received-Via": via},
            status=InboundEvent.Status.REJECTED,
            error=f"Could not be read: {exc.__class__.__name__}: {exc}"[:5000],
        )
    except Exception:
        logger.exception("Inbound mail via %s could not be recorded either", via)
