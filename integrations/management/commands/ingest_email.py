"""Read one RFC 822 message on standard input and store it as alert mail, for a local MTA's
pipe transport (Postfix `pipe`, Exim `pipe` transport). See docs/email-integration.md.

Exit status, as MTAs read it (sysexits.h):
  0   stored: queued for processing, or recorded as rejected (unknown or disabled address,
      too large) and shown in the admin; or a repeat of a message stored within 24 hours
      (same Message-ID, same integration), not stored again. Rejected mail is not bounced:
      senders of alerts are machines, and bounces to them would be backscatter.
  65  EX_DATAERR: standard input holds no message; --recipient or --sender is not text
      (an 8-bit byte in no encoding, a NUL); (without --recipient) its recipient headers
      hold no address that can be read; or the database refused what the message holds
      (DataError, UnicodeError: trying again would never help). The MTA bounces it. Such
      a message is still recorded as rejected when it can be.
  75  EX_TEMPFAIL: the database could not store it now (it is down, a connection broke),
      or the integration is over its rate limit; the MTA keeps it and retries.
Every failure is one line on standard error, never a traceback.
"""

import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, DataError

from integrations import email_body, inbound_mail, storable
from integrations.models import InboundEvent

EX_DATAERR = 65
EX_TEMPFAIL = 75
CHUNK = 64 * 1024


def read_limited(stream, limit: int) -> tuple[bytes, int]:
    """The first `limit` + 1 bytes of the stream and its full size; the rest is read and
    dropped, so a pipe is always drained."""
    kept = bytearray()
    size = 0
    while chunk := stream.read(CHUNK):
        size += len(chunk)
        if len(kept) <= limit:
            kept += chunk[: limit + 1 - len(kept)]
    return bytes(kept), size


def one_line(text: str) -> str:
    # Storable text is also text stderr can write: no lone surrogates from argv or a header.
    return " ".join(storable.text(text).split())


def is_text(value: str) -> bool:
    """Whether an argument is text: argv bytes that are no UTF-8 arrive as lone surrogates."""
    return value.isprintable() and storable.UNSTORABLE.search(value) is None


class Command(BaseCommand):
    help = "Store one RFC 822 message read on standard input as alert mail (MTA pipe)."
    # Tests pass a byte stream instead of the real standard input.
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        parser.add_argument(
            "--recipient", action="append", default=[],
            help="Envelope recipient (Postfix: ${recipient}; Exim: $local_part@$domain). "
                 "Without it the Delivered-To, X-Original-To, To and Cc headers are used.",
        )
        parser.add_argument(
            "--sender", default="", help="Envelope sender (Postfix: ${sender}).",
        )

    def handle(self, *args, recipient, sender, **options):
        for name, values in (("--recipient", recipient), ("--sender", [sender])):
            if not all(is_text(value) for value in values):
                # The MTA passed bytes no address is made of: a broken configuration or
                # mail, not a reason to retry. Nothing is read or stored.
                raise CommandError(
                    one_line(f"{name} {ascii(next(v for v in values if not is_text(v)))[:200]}"
                             " is not text (an 8-bit byte in no encoding, or a control"
                             " character)."),
                    returncode=EX_DATAERR,
                )
        stream = options.get("stdin") or sys.stdin.buffer
        raw, size = read_limited(stream, settings.TOCSIN_MAX_BODY_BYTES)
        if not raw.strip():
            raise CommandError("The message on standard input is empty.", returncode=EX_DATAERR)
        try:
            # Headers only, unparsed: see email_body.read_headers.
            message = email_body.read_headers(raw)
            has_headers = bool(message.keys())
        except Exception as exc:
            raise CommandError(one_line(f"The message cannot be parsed ({exc})."),
                               returncode=EX_DATAERR) from None
        if not has_headers:
            raise CommandError(
                "Standard input is not an RFC 822 message: it has no header fields.",
                returncode=EX_DATAERR,
            )
        recipients = recipient or inbound_mail.header_recipients(message)
        try:
            event = inbound_mail.store_mail(
                raw, recipients=recipients, via="ingest_email", sender=sender, size=size,
                message_id=inbound_mail.message_id_of(message), log_rejection=False,
            )
        except inbound_mail.Duplicate as duplicate:
            self.stdout.write(one_line(str(duplicate)))
            return
        except inbound_mail.RateLimited as limited:
            raise CommandError(one_line(f"{limited} The MTA should try again later."),
                               returncode=EX_TEMPFAIL) from None
        except (DataError, UnicodeError) as exc:
            # The database refuses something this message holds: it would refuse it on
            # every retry, so the mail is bounced (and kept as rejected), not held forever.
            event = inbound_mail.record_unreadable(raw, "ingest_email", exc)
            recorded = f"; recorded as rejected inbound event {event.trace_id}" if event else ""
            raise CommandError(
                one_line(f"The message cannot be stored ({exc.__class__.__name__}: {exc})"
                         f"{recorded}."),
                returncode=EX_DATAERR,
            ) from None
        except DatabaseError as exc:
            raise CommandError(
                one_line(f"The message could not be stored ({exc.__class__.__name__}: {exc}); "
                         "try again later."),
                returncode=EX_TEMPFAIL,
            ) from None
        if not recipients:
            # Headers so malformed that no address can be read: bounce it, though it is
            # recorded, so the sender learns the mail went nowhere.
            raise CommandError(
                f"No recipient address can be read from the Delivered-To, X-Original-To, To "
                f"or Cc headers; recorded as rejected inbound event {event.trace_id}.",
                returncode=EX_DATAERR,
            )
        if event.status == InboundEvent.Status.REJECTED:
            self.stderr.write(one_line(
                f"Rejected, recorded as inbound event {event.trace_id}: {event.error}"
            ))
        else:
            self.stdout.write(f"Stored as inbound event {event.trace_id}.")
