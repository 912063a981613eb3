"""Idempotency keys: a repeat of a request within WINDOW is answered like the first one and
stores nothing new (docs/generic-webhook.md, docs/incoming-webhook.md). Mail uses its
Message-ID the same way (docs/email-integration.md).
"""

import hashlib
from datetime import timedelta

from django.http import JsonResponse
from django.utils import timezone

from integrations.models import IdempotencyKey, Integration

HEADER = "Idempotency-Key"
WINDOW = timedelta(hours=24)
MAX_KEY_LENGTH = 255


class InvalidKey(ValueError):
    pass


class Repeated(Exception):
    """Another request with the same key was stored first; answer with its answer."""

    def __init__(self, earlier: IdempotencyKey):
        super().__init__(earlier.key)
        self.earlier = earlier


def key_from(request) -> str:
    """The request's Idempotency-Key, '' when it sends none; InvalidKey when unusable."""
    value = request.headers.get(HEADER)
    if value is None:
        return ""
    value = value.strip()
    if not value:
        raise InvalidKey(f"{HEADER} is empty")
    if len(value) > MAX_KEY_LENGTH:
        raise InvalidKey(f"{HEADER} is longer than {MAX_KEY_LENGTH} characters")
    if not value.isprintable():
        raise InvalidKey(f"{HEADER} contains control characters")
    return value


def message_id_key(message_id: str) -> str:
    """The key of a mail: its Message-ID, hashed so any length fits the column."""
    digest = hashlib.sha256(message_id.strip().encode("utf-8", "replace")).hexdigest()
    return f"message-id:{digest}"


def earlier(integration: Integration, key: str) -> IdempotencyKey | None:
    if not key:
        return None
    return IdempotencyKey.objects.filter(
        integration=integration, key=key, created_at__gte=timezone.now() - WINDOW
    ).first()


def remember(integration: Integration, key: str, event, status_code: int, response: dict):
    """Record the answer, in the caller's transaction. Raises IntegrityError when another
    request holds the key: the caller's transaction is then rolled back whole."""
    # A key past the window may be used again: its old row gives way.
    IdempotencyKey.objects.filter(
        integration=integration, key=key, created_at__lt=timezone.now() - WINDOW
    ).delete()
    IdempotencyKey.objects.create(
        integration=integration, key=key, event=event, status_code=status_code,
        response=response,
    )


def replay(record: IdempotencyKey) -> JsonResponse:
    response = JsonResponse(record.response, status=record.status_code)
    response["Idempotent-Replayed"] = "true"
    return response


def prune() -> int:
    deleted, _ = IdempotencyKey.objects.filter(
        created_at__lt=timezone.now() - WINDOW
    ).delete()
    return deleted
