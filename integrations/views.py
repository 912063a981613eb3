"""Ingest endpoints. Each one answers fast: it checks, stores the request as an inbound
event, hands it to the task queue and returns a trace id."""

import functools
import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from integrations import generic, idempotency, queue, ratelimit, storable
from integrations.models import InboundEvent, Integration, IntegrationToken, hash_token

logger = logging.getLogger(__name__)

KEPT_HEADERS = ["Content-Type", "User-Agent", "X-Forwarded-For", "X-Request-Id"]


def error(status: int, message: str, **extra) -> JsonResponse:
    return JsonResponse({"message": message, **extra}, status=status)


def post_only(view):
    """Like require_POST, but senders get the JSON error body every ingest answer has."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method != "POST":
            response = error(405, "Use POST")
            response["Allow"] = "POST"
            return response
        return view(request, *args, **kwargs)

    return csrf_exempt(wrapper)


def read_body(request, limit: int) -> bytes | None:
    """The request body, or None when it is over the limit (checked before reading)."""
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        return None
    body = request.read(limit + 1)
    return None if len(body) > limit else body


def store_event(request, integration, source: str, body: bytes, **fields) -> InboundEvent:
    # PostgreSQL keeps no NUL or lone surrogate in jsonb: a %00 in a query string must not
    # turn an accepted request into a 500 (or an incident title that cannot be saved).
    headers = {
        name: storable.text(request.headers[name])
        for name in KEPT_HEADERS if name in request.headers
    }
    headers["Remote-Addr"] = request.META.get("REMOTE_ADDR", "")
    query = {storable.text(name): storable.text(value) for name, value in request.GET.items()}
    with transaction.atomic():
        event = InboundEvent.objects.create(
            integration=integration, source=source, body=body, headers=headers,
            query=query, enqueued_at=timezone.now(), **fields,
        )
        if event.status == InboundEvent.Status.QUEUED:
            transaction.on_commit(lambda: queue.enqueue(event))
    return event


def answer(request, integration, source: str, body: bytes, *, key: str, http_status: int,
           document, **fields) -> JsonResponse:
    """Store the event and answer `document(event)` with `http_status`. With an idempotency
    key the answer is remembered in the same transaction; if a simultaneous repeat
    remembered it first, this event is rolled back and that answer given instead."""
    if not key:
        # Most requests: store_event's own transaction is enough (no savepoint around it).
        return JsonResponse(document(store_event(request, integration, source, body, **fields)),
                            status=http_status)
    try:
        with transaction.atomic():
            event = store_event(request, integration, source, body, **fields)
            content = document(event)
            idempotency.remember(integration, key, event, http_status, content)
    except IntegrityError:
        earlier = idempotency.earlier(integration, key)
        if earlier is None:
            raise
        return idempotency.replay(earlier)
    return JsonResponse(content, status=http_status)


def success(event: InboundEvent) -> dict:
    return {"message": "success", "trace_id": str(event.trace_id)}


def idempotency_key(request) -> tuple[str, JsonResponse | None]:
    try:
        return idempotency.key_from(request), None
    except idempotency.InvalidKey as exc:
        return "", error(400, "Invalid Idempotency-Key header",
                         errors={idempotency.HEADER: str(exc)})


def over_rate_limit(integration: Integration) -> JsonResponse | None:
    wait = ratelimit.integration_retry_after(integration)
    if wait is None:
        return None
    response = error(
        429, f"Rate limit of {integration.rate_limit_per_minute} requests per minute exceeded",
        retry_after=wait,
    )
    response["Retry-After"] = str(wait)
    return response


def repeat_or_limit(request, integration: Integration) -> tuple[str, JsonResponse | None]:
    """The request's Idempotency-Key, and the answer that ends the request before anything
    is stored, if any: a bad key (400), a repeat (the first answer again), or the rate limit
    (429). A repeat is answered before the rate limit: it costs one lookup and stores
    nothing."""
    repeat_key, refused = idempotency_key(request)
    if refused:
        return repeat_key, refused
    earlier = idempotency.earlier(integration, repeat_key)
    if earlier is not None:
        return repeat_key, idempotency.replay(earlier)
    return repeat_key, over_rate_limit(integration)


@post_only
def generic_event(request, key):
    integration = Integration.objects.filter(key=key, kind=Integration.Kind.GENERIC).first()
    if integration is None or not integration.is_enabled:
        return error(404, "No enabled integration has this key")
    body = read_body(request, settings.TOCSIN_MAX_BODY_BYTES)
    if body is None:
        return error(413, f"Body is larger than {settings.TOCSIN_MAX_BODY_BYTES} bytes")
    repeat_key, answered = repeat_or_limit(request, integration)
    if answered:
        return answered
    try:
        generic.accept(body, mapped=integration.mapping is not None)
    except generic.InvalidPayload as exc:
        # Kept as a rejected event so whoever sets up the sender can see what arrived.
        errors = exc.errors
        return answer(
            request, integration, "generic", body, key=repeat_key, http_status=400,
            document=lambda event: {"message": "Invalid payload", "errors": errors,
                                    "trace_id": str(event.trace_id)},
            status=InboundEvent.Status.REJECTED, error=str(exc),
        )
    return answer(request, integration, "generic", body, key=repeat_key, http_status=200,
                  document=success)


def alert_status(request, trace_id):
    event = (
        InboundEvent.objects.select_related("integration", "alert__incident")
        .defer("body").filter(trace_id=trace_id).first()
    )
    if event is None:
        return error(404, "Unknown trace id (or older than the retention period)")
    if event.status in (InboundEvent.Status.FAILED, InboundEvent.Status.REJECTED):
        return JsonResponse({"status": "failed", "error": event.error})
    if event.status == InboundEvent.Status.QUEUED:
        return JsonResponse({"status": "queued"})
    alert = getattr(event, "alert", None)
    incident = alert.incident if alert else None
    return JsonResponse({
        "status": "completed",
        "incident": (
            {"incident_number": incident.number, "unique_id": incident.unique_id}
            if incident else None
        ),
        "alert": str(alert.pk) if alert else None,
        "integration": {"name": event.integration.name if event.integration else None},
        "is_incident_created": bool(alert and alert.opened_incident),
        "suppressed": bool(alert and alert.suppressed),
    })


def unauthorized(message: str) -> JsonResponse:
    response = error(401, message)
    response["WWW-Authenticate"] = 'Bearer realm="tocsin"'
    return response


def bearer_token(request) -> IntegrationToken | None:
    scheme, _, plaintext = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not plaintext.strip():
        return None
    # Looked up by hash: the plaintext is never stored, and an equality lookup on a
    # SHA-256 digest reveals nothing about other tokens through timing.
    return (
        IntegrationToken.objects.select_related("integration")
        .filter(token_hash=hash_token(plaintext.strip())).first()
    )


@post_only
def incoming_webhook_create(request):
    if not request.headers.get("Authorization"):
        return unauthorized("Missing Authorization: Bearer <token> header")
    token = bearer_token(request)
    if token is None:
        return unauthorized("Unknown token")
    if not token.is_active:
        return unauthorized("This token has been revoked")
    integration = token.integration
    if not integration.is_enabled:
        return error(404, "This integration is disabled")
    limit = settings.TOCSIN_INCOMING_WEBHOOK_MAX_BODY_BYTES
    body = read_body(request, limit)
    if body is None:
        return error(413, f"Body is larger than {limit} bytes")
    repeat_key, answered = repeat_or_limit(request, integration)
    if answered:
        return answered
    response = answer(request, integration, "incoming_webhook", body, key=repeat_key,
                      http_status=200, document=success)
    try:
        token.mark_used()
    except Exception:
        # The event is stored: a 500 now would make the sender retry and declare a
        # second incident. A stale "last used" time is the lesser harm.
        logger.exception("Could not record the use of token %s", token.pk)
    return response
