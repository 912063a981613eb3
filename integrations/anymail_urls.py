"""django-anymail's webhook URLs (/anymail/<esp>/inbound/ and /tracking/), with Amazon SES
inbound served by a view that works without boto3 (see integrations/ses.py).

Every view is wrapped by `guarded`, which gives the mail endpoints what the other ingest
endpoints have (docs/email-integration.md):
- with DEBUG off, posts are refused (503) until the ESP's posts can be authenticated:
  ANYMAIL_WEBHOOK_SECRET (basic auth) or the ESP's own signing key is set;
- bodies up to TOCSIN_INBOUND_MAIL_MAX_BYTES are accepted whatever
  DATA_UPLOAD_MAX_MEMORY_SIZE says, larger ones answered 413 before they are read;
- a rejected post (bad signature, bad credentials, malformed body) is one WARNING line in
  the log, not a traceback, and a 400 with a JSON body;
- an integration over its rate limit is answered 429 with Retry-After: ESPs retry later;
- an Idempotency-Key header is honoured like on the HTTP endpoints (in place of the
  Message-ID, which otherwise identifies repeats).
"""

import functools
import io
import logging
from email import policy
from email.parser import BytesParser
from email.utils import collapse_rfc2231_value

from anymail import urls as anymail_urls
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError
from django.http import JsonResponse, QueryDict
from django.urls import URLPattern, path
from django.utils.datastructures import MultiValueDict
from django.views.decorators.csrf import csrf_exempt

from integrations import idempotency, inbound_mail
from integrations.ses import AmazonSESInboundView

logger = logging.getLogger(__name__)

# ESPs that sign their posts: their key authenticates a post without basic auth. The
# others can only be authenticated by ANYMAIL_WEBHOOK_SECRET.
SIGNING_KEYS = {
    "mailgun": "MAILGUN_WEBHOOK_SIGNING_KEY",
    "mailersend": "MAILERSEND_INBOUND_SECRET",
    "mandrill": "MANDRILL_WEBHOOK_KEY",
    "postal": "POSTAL_WEBHOOK_KEY",
    "resend": "RESEND_INBOUND_SECRET",
}


def can_authenticate(esp: str) -> bool:
    configured = settings.ANYMAIL or {}
    key = SIGNING_KEYS.get(esp)
    return bool(configured.get("WEBHOOK_SECRET") or (key and configured.get(key)))


def refusal(status: int, message: str) -> JsonResponse:
    response = JsonResponse({"message": message}, status=status)
    # Logged here, once, with the reason: spares django.request's second line per post.
    response._has_been_logged = True
    return response


def form_data(content_type: str, body: bytes) -> tuple[QueryDict, MultiValueDict]:
    """A multipart/form-data body as Django's request.POST and request.FILES.

    Django's own parser refuses form fields past DATA_UPLOAD_MAX_MEMORY_SIZE, and a raw
    MIME message (Mailgun's body-mime, SendGrid's email) is one field; the size of the
    whole body is already bounded here.
    """
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    post, files = QueryDict(mutable=True), MultiValueDict()
    for part in message.iter_parts() if message.is_multipart() else []:
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        name = collapse_rfc2231_value(name)
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is None:
            post.appendlist(name, payload.decode(part.get_content_charset() or "utf-8", "replace"))
        else:
            files.appendlist(name, SimpleUploadedFile(filename, payload, part.get_content_type()))
    post._mutable = False
    return post, files


def preload(request, body: bytes) -> None:
    # What HttpRequest.body does itself, without its DATA_UPLOAD_MAX_MEMORY_SIZE check.
    request._body = body
    request._stream = io.BytesIO(body)
    global_limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if (request.content_type == "multipart/form-data" and global_limit is not None
            and len(body) > global_limit):
        request._post, request._files = form_data(request.META["CONTENT_TYPE"], body)


def guarded(view, esp: str):
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not settings.DEBUG and not can_authenticate(esp):
            logger.warning(
                "Inbound mail post to %s refused: set ANYMAIL_WEBHOOK_SECRET%s first",
                request.path, f" or ANYMAIL_{SIGNING_KEYS[esp]}" if esp in SIGNING_KEYS else "",
            )
            # 503, not 4xx: the ESP keeps the mail and retries until this is configured.
            return refusal(503, f"Inbound mail via {esp} is not configured: its posts "
                                "cannot be authenticated yet.")
        limit = settings.TOCSIN_INBOUND_MAIL_MAX_BYTES
        declared = request.META.get("CONTENT_LENGTH") or ""
        body = None if declared.isdigit() and int(declared) > limit else request.read(limit + 1)
        if body is None or len(body) > limit:
            logger.warning("Inbound mail post to %s refused: body over %d bytes",
                           request.path, limit)
            return refusal(413, f"Body is larger than {limit} bytes")
        try:
            key = idempotency.key_from(request)
        except idempotency.InvalidKey as exc:
            logger.warning("Inbound mail post to %s refused: %s", request.path, exc)
            return refusal(400, str(exc))
        preload(request, body)
        posted = inbound_mail.posted_idempotency_key.set(key)
        try:
            return view(request, *args, **kwargs)
        except inbound_mail.RateLimited as limited:
            response = refusal(429, str(limited))
            response["Retry-After"] = str(limited.retry_after)
            return response
        except (DatabaseError, ImproperlyConfigured):
            raise  # 500: the ESP retries; a configuration error must be loud
        except SuspiciousOperation as exc:
            # Bad signature or credentials (AnymailWebhookValidationFailure) and the like.
            logger.warning("Inbound mail post to %s refused: %s", request.path, exc)
            return refusal(400, f"Refused: {exc}")
        except Exception as exc:
            logger.warning("Inbound mail post to %s refused as malformed: %s: %s",
                           request.path, exc.__class__.__name__, exc)
            return refusal(400, f"Malformed post: {exc.__class__.__name__}")
        finally:
            inbound_mail.posted_idempotency_key.reset(posted)

    return csrf_exempt(wrapper)


def guard_all(patterns) -> list[URLPattern]:
    return [
        URLPattern(p.pattern, guarded(p.callback, str(p.pattern).lstrip("^").split("/", 1)[0]),
                   p.default_args, p.name)
        for p in patterns
    ]


app_name = "anymail"
urlpatterns = guard_all([
    path("amazon_ses/inbound/", AmazonSESInboundView.as_view(),
         name="amazon_ses_inbound_webhook"),
    *anymail_urls.urlpatterns,
])
