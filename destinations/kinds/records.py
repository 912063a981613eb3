"""Create once, then update: for kinds that open a record on the remote side (a ServiceNow
incident, a Zendesk ticket) and change it on later events.

A create whose answer never arrives (a timeout, a reset connection, a 5xx) may still have
created the record, and a plain retry would create a second one. So:

1. Before creating, a RemoteRecord row for (destination, correlation id) is saved with a
   short claim, so no other send creates at the same time.
2. When the row already has the remote id, the event updates that record. A trigger that
   arrives after an acknowledge or resolve created the record has nothing left to do. A
   record deleted on the remote side (404) is forgotten and handled as in 3.
3. When the row exists without an id, an earlier create's outcome is unknown: the record is
   looked up by its correlation id first and adopted if found; only then is one created.
4. The outcome is stored: the id once known; otherwise the claim is released so the next
   attempt (or the next event) looks up before creating again.
"""

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from destinations.kinds.base import Kind, Message
from destinations.models import Delivery, RemoteRecord
from tocsin.transport import Result, TransportError
from tocsin.transport.http import Response

CREATE_EVENTS = ("triggered", "test")


class CreateOnce(Kind):
    """A kind whose remote side keeps a record per incident. It says how to talk to its
    API; ``send`` applies the rules above, with ``remote_key`` as the correlation id."""

    def find(self, message: Message) -> str:
        """The id of the record with this message's correlation id, or ""."""
        raise NotImplementedError

    def create(self, message: Message) -> tuple[Response, str]:
        """Create the record (``build``); the answer and the new id."""
        raise NotImplementedError

    def update(self, message: Message, remote_id: str) -> Response:
        """The answer to changing that record for this event."""
        raise NotImplementedError

    def send(self, message: Message) -> Result:
        return send_once(message, self.remote_key(message), self)


def claim_seconds() -> float:
    # All requests of a send (lookup, create) share one deadline
    # (tocsin.transport.http.one_send), started before the claim is taken; the margin covers
    # the database writes around them. After that the send has certainly ended, crashed or
    # not.
    return settings.TOCSIN_DELIVERY_DEADLINE_SECONDS + 30


def send_once(message: Message, key: str, kind: CreateOnce) -> Result:
    record, fresh = record_for(message, key)
    if record.remote_id:
        result = update_kept(message, record, kind)
        if result is not None:
            return result
    elif not fresh and not take(record):
        record.refresh_from_db()
        if not record.remote_id:
            wait = ((record.creating_until or timezone.now()) - timezone.now()).total_seconds()
            raise TransportError(
                "Another delivery for this incident is creating its record; trying again "
                "once that is over", permanent=False, retry_after=max(1.0, wait))
        result = update_kept(message, record, kind)
        if result is not None:
            return result
    # This send holds the claim from here on.
    try:
        # A fresh row means no create was tried before, so a trigger need not look.
        remote_id = "" if fresh and message.event in CREATE_EVENTS else kind.find(message)
        if remote_id and message.event in CREATE_EVENTS:
            response = None
        elif remote_id:
            response = kind.update(message, remote_id)
        else:
            response, remote_id = kind.create(message)
    except BaseException:
        release(record)
        raise
    if remote_id:
        RemoteRecord.objects.filter(pk=record.pk).update(
            remote_id=remote_id[:255], creating_until=None, updated_at=timezone.now())
    else:
        release(record)
    if response is None:
        return Result(None, f"Adopted record {remote_id}, created by an earlier attempt",
                      remote_id)
    return Result(response.status, response.text, remote_id)


def update_kept(message: Message, record: RemoteRecord, kind: CreateOnce) -> Result | None:
    """Send the event to the record whose id was kept; None when that record is gone (a
    404: deleted on the remote side), after which it is looked up and created like a new
    one, as when the trigger never got through."""
    if message.event in CREATE_EVENTS:
        return Result(None, f"Record {record.remote_id} was already created by an earlier "
                            "event; nothing to send", record.remote_id)
    try:
        response = kind.update(message, record.remote_id)
    except TransportError as exc:
        if exc.status != 404:
            raise
        # Only the send that still sees the old id forgets it, and then holds the claim.
        if not RemoteRecord.objects.filter(pk=record.pk, remote_id=record.remote_id).update(
                remote_id="", creating_until=timezone.now() + timedelta(
                    seconds=claim_seconds()), updated_at=timezone.now()):
            raise TransportError("The record changed while this send ran; trying again",
                                 permanent=False) from exc
        record.remote_id = ""
        return None
    return Result(response.status, response.text, record.remote_id)


def record_for(message: Message, key: str) -> tuple[RemoteRecord, bool]:
    """The row for this message's destination and key, and whether this call created it
    (and so holds its claim)."""
    destination_id, incident_id = Delivery.objects.filter(uuid=message.delivery_id) \
        .values_list("destination_id", "incident_id").get()
    return RemoteRecord.objects.get_or_create(
        destination_id=destination_id, key=key,
        defaults={"incident_id": incident_id,
                  "creating_until": timezone.now() + timedelta(seconds=claim_seconds())},
    )


def take(record: RemoteRecord) -> bool:
    """Claim a row without an id for this send; only one concurrent send's UPDATE matches."""
    now = timezone.now()
    return bool(
        RemoteRecord.objects.filter(pk=record.pk, remote_id="")
        .filter(Q(creating_until__isnull=True) | Q(creating_until__lt=now))
        .update(creating_until=now + timedelta(seconds=claim_seconds()), updated_at=now)
    )


def release(record: RemoteRecord) -> None:
    RemoteRecord.objects.filter(pk=record.pk, remote_id="").update(
        creating_until=None, updated_at=timezone.now())
