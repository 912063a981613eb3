"""Twilio's REST API, shared by SMS and voice: one POST of form fields with the account's
basic auth, through tocsin.transport.http like every other request (one deadline, one
set of status and retry rules), not through the twilio package and a second HTTP stack.

The API's base URL is an operator's setting (TOCSIN_TWILIO_API_URL), not user input, so it
is sent as trusted: the private-address guard lets it through (an on-premises gateway, a
test's local sink). Redirects away from it are guarded as usual."""

import json

from django.conf import settings

from tocsin.transport import Result, TransportError, http

SETTINGS = ("TOCSIN_TWILIO_ACCOUNT_SID", "TOCSIN_TWILIO_AUTH_TOKEN", "TOCSIN_TWILIO_FROM")


def post(resource: str, fields: dict) -> Result:
    """POST ``fields`` to <api>/2010-04-01/Accounts/<sid>/<resource>; the answer's ``sid``
    (SM…, CA…) becomes the Result's remote_id."""
    missing = [name for name in SETTINGS if not getattr(settings, name)]
    if missing:
        raise TransportError(f"Twilio is not configured: set {', '.join(missing)} "
                             "(docs/on-call.md#setting-up-twilio-and-ntfy)", permanent=True)
    sid = settings.TOCSIN_TWILIO_ACCOUNT_SID
    url = f"{settings.TOCSIN_TWILIO_API_URL}/2010-04-01/Accounts/{sid}/{resource}"
    form = {**fields, "From": settings.TOCSIN_TWILIO_FROM}
    try:
        response = http.request("POST", url, form=form, trusted=True,
                                auth=(sid, settings.TOCSIN_TWILIO_AUTH_TOKEN))
    except TransportError as exc:
        raise explained(exc) from exc
    answer = response.json()
    remote_id = answer.get("sid", "") if isinstance(answer, dict) else ""
    return Result(response.status, response.text[:http.EXCERPT_CHARS], str(remote_id)[:255])


def explained(error: TransportError) -> TransportError:
    """Twilio's refusal in words (its JSON ``code`` and ``message``: 21211 "Invalid 'To'
    Phone Number"), with the whole answer kept for whoever reads the record."""
    if error.status is None:
        return error
    detail = ""
    try:
        answer = json.loads(error.body or "null")
    except ValueError:
        answer = None
    if isinstance(answer, dict) and answer.get("message"):
        code = f", error {answer['code']}" if answer.get("code") else ""
        detail = f"{code}: {answer['message']}"
    verdict = "will retry" if not error.permanent else "refused"
    message = f"Twilio {verdict} (HTTP {error.status}{detail})"
    if error.body:
        message += f"\nResponse: {error.body}"
    return TransportError(message, permanent=error.permanent, status=error.status,
                          body=error.body, retry_after=error.retry_after)
