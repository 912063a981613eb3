"""django-anymail's webhook URLs (/anymail/<esp>/inbound/ and /tracking/), with Amazon SES
inbound served by a view that works without boto3 (see integrations/ses.py).

Every view is wrapped by `guarded`, which gives the mail endpoints what the other ingest
endpoints have (docs/email-integration.md):
- with DEBUG off, posts are refused (503) until the ESP's posts can be authenticated:
  ANYMAIL_WEBHOOK_SECRET (basic auth) or a key anymail checks that ESP's signature with
  is set (SIGNING_KEYS);
- bodies up to TOCSIN_INBOUND_MAIL_MAX_BYTES are accepted whatever
  DATA_UPLOAD_MAX_MEMORY_SIZE says, larger ones answered 413 before they are read;
  multipart forms are split here with the same limits whatever their size, and a raw
  message whose headers are too absurd to parse in bounded time is refused with 400
  before anymail parses it (integrations.mail_posts);
- a rejected post (bad signature, bad credentials, malformed body) is one WARNING line in
  the log, not a traceback, and a 400 with a JSON body;
- an integration over its rate limit is answered 429 with Retry-After: ESPs retry later;
- an Idempotency-Key header is honoured like on the HTTP endpoints (in place of the
  Message-ID, which otherwise identifies repeats), combined with each message's position
  in the post (inbound_mail.Post).
"""

import functools
import io
import logging

from anymail import urls as anymail_urls
from anymail.utils import get_anymail_setting
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.db import DatabaseError
from django.http import JsonResponse
from django.urls import URLPattern, path
from django.views.decorators.csrf import csrf_exempt

from integrations import idempotency, inbound_mail, mail_posts
from integrations.ses import AmazonSESInboundView

logger = logging.getLogger(__name__)

# The settings each of anymail's webhook views checks a signature with (read from
# anymail 15's source), by URL name, as (setting, whether anymail also reads it without
# the ANYMAIL_ prefix). Any one set authenticates that view's posts without basic auth;
# the other views can only be authenticated by ANYMAIL_WEBHOOK_SECRET. Mailgun signs
# with its webhook signing key and, without one, with the API key.
MAILGUN_KEYS = [("MAILGUN_WEBHOOK_SIGNING_KEY", False), ("MAILGUN_API_KEY", True)]
SIGNING_KEYS = {
    "mailgun_inbound_webhook": MAILGUN_KEYS,
    "mailgun_tracking_webhook": MAILGUN_KEYS,
    "mailersend_inbound_webhook": [("MAILERSEND_INBOUND_SECRET", False)],
    "mailersend_tracking_webhook": [("MAILERSEND_SIGNING_SECRET", False)],
    "mailtrap_inbound_webhook": [("MAILTRAP_INBOUND_SECRET", False)],
    "mailtrap_tracking_webhook": [("MAILTRAP_TRACKING_SECRET", False)],
    "mandrill_webhook": [("MANDRILL_WEBHOOK_KEY", True)],
    "mandrill_tracking_webhook": [("MANDRILL_WEBHOOK_KEY", True)],
    "postal_inbound_webhook": [("POSTAL_WEBHOOK_KEY", True)],
    "postal_tracking_webhook": [("POSTAL_WEBHOOK_KEY", True)],
    "resend_inbound_webhook": [("RESEND_INBOUND_SECRET", False)],
    "resend_tracking_webhook": [("RESEND_SIGNING_SECRET", False)],
    "sendgrid_tracking_webhook": [("SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY", True)],
    "unisender_go_tracking_webhook": [("UNISENDER_GO_API_KEY", True)],
}


def configured(name: str, allow_bare: bool = False):
    """A setting as anymail reads it: ANYMAIL[name], else ANYMAIL_<name>, else (when
    anymail allows it) <name>."""
    return get_anymail_setting(name.lower(), default=None, allow_bare=allow_bare)


def can_authenticate(url_name: str) -> bool:
    return bool(configured("WEBHOOK_SECRET") or any(
        configured(name, allow_bare) for name, allow_bare in SIGNING_KEYS.get(url_name, [])
    ))


def refusal(status: int, message: str) -> JsonResponse:
    response = JsonResponse({"message": message}, status=status)
    # Logged here, once, with the reason: spares django.request's second line per post.
    response._has_been_logged = True
    return response


def preload(request, body: bytes) -> None:
    # What HttpRequest.body does itself, without its DATA_UPLOAD_MAX_MEMORY_SIZE check.
    request._body = body
    request._stream = io.BytesIO(body)
    if request.content_type == "multipart/form-data":
        # Whatever the size: Django's parser would apply the admin's limits to small posts.
        request._post, request._files = mail_posts.form_data(request.META["CONTENT_TYPE"], body)


def guarded(view, url_name: str):
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not settings.DEBUG and not can_authenticate(url_name):
            keys = " or ".join(f"ANYMAIL_{name}" for name, _ in SIGNING_KEYS.get(url_name, []))
            logger.warning("Inbound mail post to %s refused: set ANYMAIL_WEBHOOK_SECRET%s first",
                           request.path, f" or {keys}" if keys else "")
            # 503, not 4xx: the ESP keeps the mail and retries until this is configured.
            return refusal(503, f"Inbound mail via {request.path} is not configured: its "
                                "posts cannot be authenticated yet.")
        limit = settings.TOCSIN_INBOUND_MAIL_MAX_BYTES
        declared = request.META.get("CONTENT_LENGTH") or ""
        too_large = declared.isascii() and declared.isdigit() and int(declared) > limit
        body = None if too_large else request.read(limit + 1)
        if body is None or len(body) > limit:
            logger.warning("Inbound mail post to %s refused: body over %d bytes",
                           request.path, limit)
            return refusal(413, f"Body is larger than {limit} bytes")
        try:
            key = idempotency.key_from(request)
            preload(request, body)
            problem = mail_posts.post_problem(request)
        except (idempotency.InvalidKey, mail_posts.MalformedPost, SuspiciousOperation) as exc:
            problem = str(exc)
        if problem:
            logger.warning("Inbound mail post to %s refused: %s", request.path, problem)
            return refusal(400, f"Refused: {problem}")
        posted = inbound_mail.posted.set(inbound_mail.Post(idempotency_key=key))
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
            inbound_mail.posted.reset(posted)

    return csrf_exempt(wrapper)


def guard_all(patterns) -> list[URLPattern]:
    return [
        URLPattern(p.pattern, guarded(p.callback, p.name), p.default_args, p.name)
        for p in patterns
    ]


app_name = "anymail"
urlpatterns = guard_all([
    path("amazon_ses/inbound/", AmazonSESInboundView.as_view(),
         name="amazon_ses_inbound_webhook"),
    *anymail_urls.urlpatterns,
])
