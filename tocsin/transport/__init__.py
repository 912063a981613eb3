"""Sending things out, for every app: the outcome of a send and the one error it raises.

A send (an HTTP request to a destination, an email, later an SMS or a call) either returns
a ``Result`` or raises ``TransportError``, which says whether trying again can help. The
outbox (tocsin.outbox) turns that into "sent", "retry later" or "failed"; nothing else
about the send needs to be known by whoever recorded the work.

The senders live beside this: ``tocsin.transport.http`` (the one HTTP client, with its
deadline, private-address guard and status rules) and ``tocsin.transport.mail`` (one email
through Django's mail framework). A new channel (SMS or a voice call through a provider's
REST API, an ntfy server) builds its request, sends it through ``http`` and maps the answer
to a Result, as the destination kinds do (destinations/kinds/base.py).
"""

from dataclasses import dataclass


@dataclass
class Result:
    """What the other side answered to a successful send."""

    # The protocol's status (an HTTP status); None where the protocol gives none.
    status: int | None = None
    # An excerpt of the answer, for the record a person reads.
    body: str = ""
    # The id the other side gave the thing sent (a PagerDuty dedup key, a Message-ID).
    remote_id: str = ""


class TransportError(Exception):
    """A send that did not succeed. ``permanent`` says whether trying again can help;
    ``retry_after`` is the wait the other side asked for, in seconds, if it asked."""

    def __init__(self, message: str, *, permanent: bool, status: int | None = None,
                 body: str = "", retry_after: float | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.status = status
        self.body = body
        self.retry_after = retry_after
