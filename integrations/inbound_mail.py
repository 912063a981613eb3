"""Receiving alert mail (docs/email-integration.md) from django-anymail's inbound webhooks (the
`inbound` signal) and from `manage.py ingest_email` (a local MTA's pipe).

Both take the same path: find the integration the recipient address names, store the raw
message as an inbound event (rejected, with the reason, when no enabled integration has the
address or the message is too large), and queue it for processing once the transaction
commits, as the HTTP ingest views do. Like them, mail counts against the integration's rate
limit (the sender is told to retry later) and a repeat is not stored twice: a message with
the Message-ID of one stored for the same integration within 24 hours is a retry by the
ESP or MTA (docs/email-integration.md).
"""

import hashlib
import logging
import re
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.utils import timezone

from integrations import idempotency, queue, ratelimit, storable
from integrations.models import InboundEvent, Integration

logger = logging.getLogger(__name__)

SOURCE = "email"
# Where a recipient is looked for when the sender gives no envelope recipient, in order.
RECIPIENT_HEADERS = ["Delivered-To", "X-Original-To", "To", "Cc"]
# The database cannot take the message now: the sender should try again later.
STORAGE_ERRORS = (OperationalError, InterfaceError)
# What ends an address in a header value: whitespace, list and group separators, angle
# brackets, quotes, comments and domain literals. Splitting on these is one pass over the
# value; the email package's address parsers are superlinear on some shapes (a long run of
# `<`) and recurse on nested comments until RecursionError.
ADDRESS_SEPARATORS = re.compile(r'[\s<>,;:"()\[\]\\]+')
# Of the addresses at TOCSIN_INBOUND_EMAIL_DOMAIN, only the first this many are looked up,
# in one query: a To list of thousands of them costs no more.
MAX_CANDIDATES = 100


@dataclass
class Post:
    """The webhook post being handled, set by integrations.anymail_urls: anymail's signal
    hands over each mail, not the request. An ESP may send several mails in one post
    (Mandrill's `mandrill_events`), so the post's Idempotency-Key is combined with each
    mail's position in it: a repeat of the whole post stores nothing new, and the second
    mail of a post is not taken for a repeat of the first."""

    idempotency_key: str = ""
    received: int = 0

    def next_key(self) -> str:
        position, self.received = self.received, self.received + 1
        if not self.idempotency_key:
            return ""
        digest = hashlib.sha256(f"{self.idempotency_key}\n{position}".encode()).hexdigest()
        return f"post:{digest}"


posted: ContextVar[Post | None] = ContextVar("posted", default=None)


class RateLimited(Exception):
    """The integration is over its rate limit: the sender should try again later."""

    def __init__(self, integration: Integration, retry_after: int):
        super().__init__(
            f"Rate limit of {integration.rate_limit_per_minute} messages per minute exceeded "
            f"for {integration.name!r}; retry in {retry_after} s."
        )
        self.retry_after = retry_after


class Duplicate(Exception):
    """The same message (by Message-ID, or by the post's Idempotency-Key and the message's
    position in the post) was stored for this integration within 24 hours."""

    def __init__(self, trace_id: str, by: str):
        super().__init__(
            f"Already received as inbound event {trace_id} (same {by} within 24 hours); "
            "not stored again."
        )
        self.trace_id = trace_id


def raw_header_values(message, name: str) -> list[str]:
    """The raw text of every `name` header, made storable (8-bit bytes read as lone
    surrogates and NUL become U+FFFD). Read unparsed: the email package's structured
    header parser raises on some malformed headers (`To: Group: ;;;`, `<a@[1.2.3>`) and
    takes superlinear time on long address and parameter lists."""
    lowered = name.lower()
    return [
        storable.text(str(value)) for key, value in message.raw_items() if key.lower() == lowered
    ]


def addresses_in(value: str) -> list[str]:
    """The addresses of a header value: every run of characters between separators that
    holds an `@`. Display names and comments are not told apart from addresses; a stray
    word with an `@` in one only adds a candidate that names no integration."""
    return [token for token in ADDRESS_SEPARATORS.split(value) if "@" in token]


def header_recipients(message) -> list[str]:
    """Addresses of the recipient headers, without duplicates, in RECIPIENT_HEADERS order.

    Whatever a header holds, this never raises and takes time linear in its length: what
    cannot be read as an address is skipped, and an address with control characters or
    bytes that are no text (a NUL, an 8-bit byte) is no address.
    """
    found: dict[str, None] = {}
    for name in RECIPIENT_HEADERS:
        for value in raw_header_values(message, name):
            for address in addresses_in(value):
                if address.isprintable() and storable.REPLACEMENT not in address:
                    found.setdefault(address)
    return list(found)


def message_id_of(message) -> str:
    """The Message-ID of a parsed message, or '' when it has none. Repeats are told by it,
    so it is made storable without losing what tells two apart: 8-bit bytes and NUL are
    written as `\\xNN` escapes, not replaced by one shared U+FFFD."""
    try:
        values = [str(value) for key, value in message.raw_items()
                  if key.lower() == "message-id"]
    except Exception:
        return ""
    if not values:
        return ""
    value = values[0].strip()
    try:
        raw = value.encode("utf-8", "surrogateescape")  # the bytes as they were sent
    except UnicodeEncodeError:
        raw = value.encode("utf-8", "backslashreplace")
    escaped = raw.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
    return storable.text(escaped)[:1000]


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
    """The email integration of the first address that has one (enabled or not), among
    the first MAX_CANDIDATES addresses at TOCSIN_INBOUND_EMAIL_DOMAIN."""
    candidates: dict[str, str] = {}
    for address in addresses:
        local = local_part(address)
        if local and local not in candidates:
            candidates[local] = address
            if len(candidates) == MAX_CANDIDATES:
                break
    if not candidates:
        return None, ""
    found = {
        integration.email_local_part: integration
        for integration in Integration.objects.select_related("service").filter(
            kind=Integration.Kind.EMAIL, email_local_part__in=list(candidates)
        )
    }
    for local, address in candidates.items():
        if local in found:
            return found[local], address
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
    raw: bytes, *, recipients: list[str], via: str, sender: str = "", size: int | None = None,
    message_id: str = "", idempotency_key: str = "", log_rejection: bool = True,
) -> InboundEvent:
    """Store one received message as an inbound event and queue it, or record it rejected.

    `recipients` are the candidate addresses, best first; `size` is the full size when the
    caller kept only the start of a large message. Database errors propagate, so the sender
    (ESP or MTA) retries later: nothing is lost while the database is down. Raises
    Duplicate for a repeat of a stored message and RateLimited when the integration is
    over its limit (nothing is stored then; the sender retries). A caller that reports
    the refusal itself (ingest_email, on its one line of stderr) passes log_rejection=False.
    """
    size = len(raw) if size is None else size
    # Whatever is stored must be text every database takes: PostgreSQL's jsonb refuses a
    # lone surrogate (an 8-bit byte in a header read with surrogateescape) and NUL.
    recipients = [storable.text(address) for address in recipients]
    sender, message_id = storable.text(sender or ""), storable.text(message_id)[:1000]
    integration, address = find_integration(recipients)
    key = ""
    if integration is not None:
        # A key the sender chose wins over the Message-ID.
        key = idempotency_key or (idempotency.message_id_key(message_id) if message_id else "")
    repeat_of = "Idempotency-Key and position in the post" if idempotency_key else "Message-ID"
    earlier = idempotency.earlier(integration, key) if key else None
    if earlier is not None:
        raise Duplicate(earlier.response.get("trace_id", ""), repeat_of)
    error = rejection(integration, recipients, size)
    if not error:
        wait = ratelimit.integration_retry_after(integration)
        if wait is not None:
            limited = RateLimited(integration, wait)
            if log_rejection:
                logger.warning("Inbound mail via %s refused for now: %s", via, limited)
            raise limited
    headers = {
        "Recipient": address or ", ".join(recipients)[:1000],
        "Envelope-Sender": sender[:1000],
        "Received-Via": via,
        **({"Message-ID": message_id} if message_id else {}),
    }
    limit = settings.TOCSIN_MAX_BODY_BYTES
    try:
        with transaction.atomic():
            event = InboundEvent.objects.create(
                integration=integration, source=SOURCE, body=raw[:limit], headers=headers,
                status=InboundEvent.Status.REJECTED if error else InboundEvent.Status.QUEUED,
                error=error, enqueued_at=None if error else timezone.now(),
            )
            if key:
                # Decides between two deliveries of the same message at once.
                idempotency.remember(
                    integration, key, event, 200, {"trace_id": str(event.trace_id)}
                )
            if not error:
                transaction.on_commit(lambda: queue.enqueue(event))
    except IntegrityError:
        earlier = idempotency.earlier(integration, key) if key else None
        if earlier is None:
            raise
        raise Duplicate(earlier.response.get("trace_id", ""), repeat_of) from None
    if error and log_rejection:
        logger.warning("Inbound mail via %s rejected (event %s): %s", via, event.trace_id, error)
    return event


def message_bytes(message) -> bytes:
    """The RFC 822 bytes of a message parsed or built by anymail.

    Header lines read from the raw message are written as they came: refolding a long one
    would parse it with the structured header parser, superlinear on long address and
    parameter lists."""
    try:
        return message.as_bytes(policy=message.policy.clone(refold_source="none"))
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
    post = posted.get()
    key = post.next_key() if post is not None else ""
    try:
        envelope = message.envelope_recipient
        recipients = [envelope] if envelope else header_recipients(message)
        store_mail(
            message_bytes(message), recipients=recipients, via=esp_name,
            sender=message.envelope_sender or "", message_id=message_id_of(message),
            idempotency_key=key,
        )
    except Duplicate as duplicate:
        logger.info("Inbound mail via %s: %s", esp_name, duplicate)
    except RateLimited:
        raise  # answered 429 by integrations.anymail_urls, so the ESP retries later
    except STORAGE_ERRORS:
        logger.exception("Inbound mail via %s could not be stored; the ESP will retry", esp_name)
        raise
    except Exception as exc:
        # One line: whoever can post mail could otherwise fill the log with tracebacks.
        logger.warning("Inbound mail via %s could not be read: %s: %s", esp_name,
                       exc.__class__.__name__, exc)
        try:
            body = message_bytes(message)
        except Exception:
            body = b""
        record_unreadable(body, esp_name, exc)


def record_unreadable(body: bytes, via: str, exc: Exception) -> InboundEvent | None:
    """Keep what can be kept of a message that broke receiving, so it is not lost unseen."""
    try:
        return InboundEvent.objects.create(
            source=SOURCE, body=body[: settings.TOCSIN_MAX_BODY_BYTES],
            headers={"Received-Via": via}, status=InboundEvent.Status.REJECTED,
            error=storable.text(f"Could not be read: {exc.__class__.__name__}: {exc}")[:5000],
        )
    except Exception:
        logger.exception("Inbound mail via %s could not be recorded either", via)
        return None
