"""Pages of the on-call app served outside the admin: the acknowledge link a page carries,
and the key pressed during a voice call (docs/on-call.md#acknowledge-links).

Neither asks for a login: the signed token in the URL is the credential, for one user and
one incident. So every answer shows that incident only, and nothing when the token fails."""

import base64
import hashlib
import hmac
from dataclasses import dataclass
from xml.sax.saxutils import escape

from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpResponse, HttpResponseForbidden
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from incidents import lifecycle
from incidents.links import incident_url
from incidents.models import Incident, TimelineEntry
from oncall.acklinks import LinkError, read_token
from tocsin.links import portal_url

Status = Incident.Status
ACKNOWLEDGE_PERMISSION = "incidents.acknowledge_incident"


class Refusal(Exception):
    """Why a token cannot acknowledge anything: an HTTP status and a sentence for the page
    (spoken too, on a call)."""

    def __init__(self, status: int, title: str, message: str):
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


@dataclass(frozen=True)
class Settled:
    """Who acknowledged or resolved an incident already, and when."""

    status_label: str
    by: str  # "by rita", or "automatically" (an alert resolved it)
    at: object


def link_target(token: str):
    """(user, incident) the token was signed for, or Refusal."""
    try:
        target = read_token(token)
    except LinkError as exc:
        if exc.expired:
            raise Refusal(410, "This link has expired",
                          "Acknowledge links are valid for 24 hours. Sign in to the portal "
                          "to acknowledge the incident.") from exc
        # 400, not 404: the address exists, what was sent in it is broken (a link cut
        # short by a mail client, or changed by hand).
        raise Refusal(400, "This link is not valid",
                      "The link may have been cut short or changed. Open it again from the "
                      "message, or sign in to the portal.") from exc
    user = get_user_model().objects.filter(pk=target.user_id).first()
    if user is None or not user.is_active:
        # A deleted and a deactivated account are told apart by nothing a link holder
        # could use: both may no longer act in the portal.
        raise Refusal(403, "This account can no longer acknowledge",
                      "The account this link was sent to has been deactivated or removed.")
    if not user.has_perm(ACKNOWLEDGE_PERMISSION):
        # The link acts as its user without a login, so it may grant no more than the
        # user holds now: a link sent before they lost their roles must not outlive them.
        raise Refusal(403, "You may no longer acknowledge incidents",
                      "The account this link was sent to no longer has a role that may "
                      "acknowledge incidents. Ask an administrator if you should still be "
                      "able to.")
    incident = Incident.objects.select_related("service").filter(pk=target.incident_id).first()
    if incident is None:
        raise Refusal(404, "This incident no longer exists",
                      "The incident this link was sent for has been deleted.")
    return user, incident


def settled(incident: Incident) -> Settled | None:
    """Who moved the incident past triggered, from its timeline; None while triggered."""
    if incident.status == Status.TRIGGERED:
        return None
    entry = (TimelineEntry.objects.select_related("actor")
             .filter(incident=incident, kind=incident.status).order_by("-created_at", "-id")
             .first())
    at = incident.acknowledged_at if incident.status == Status.ACKNOWLEDGED \
        else incident.resolved_at
    by = f"by {entry.actor}" if entry and entry.actor else "automatically"
    return Settled(Status(incident.status).label.lower(), by, at)


def page_context(incident: Incident, **extra) -> dict:
    return {
        "incident": incident,
        "incident_url": incident_url(incident.pk),
        "portal_url": portal_url(reverse("admin:index")),
        **extra,
    }


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def acknowledge_link(request, token):
    """GET shows the incident and a button and changes nothing (mail scanners follow
    links); POST, from that button, acknowledges as the token's user."""
    try:
        user, incident = link_target(token)
    except Refusal as refusal:
        return render(request, "oncall/ack_refused.html", {
            "refusal": refusal, "portal_url": portal_url(reverse("admin:index")),
        }, status=refusal.status)
    if request.method != "POST":
        done = settled(incident)
        # A link that can no longer act answers 4xx on every method, like the second POST
        # does: the page still says who got there first, without the button.
        return render(request, "oncall/ack.html", page_context(
            incident, ack_user=user, settled=done), status=409 if done else 200)
    if lifecycle.acknowledge(incident, actor=user, note="with an acknowledge link"):
        return render(request, "oncall/ack.html", page_context(
            incident, ack_user=user, acknowledged_now=True))
    # Someone (or an alert) got there first: the conditional UPDATE in the lifecycle
    # decided, and refreshed the incident.
    return render(request, "oncall/ack.html", page_context(
        incident, ack_user=user, settled=settled(incident)), status=409)


def twiml_say(text: str) -> HttpResponse:
    body = ('<?xml version="1.0" encoding="UTF-8"?>'
            f"<Response><Say>{escape(text)}</Say></Response>")
    return HttpResponse(body, content_type="text/xml")


def twilio_signature(auth_token: str, url: str, params) -> str:
    """Twilio's request signature: HMAC-SHA1, keyed with the auth token, over the full URL
    followed by every POST parameter sorted by name, name and value with no separator;
    base64 encoded."""
    message = url + "".join(
        name + value
        for name in sorted(params) for value in sorted(params.getlist(name)))
    digest = hmac.new(auth_token.encode(), message.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signed_by_twilio(request) -> bool:
    # The URL Twilio called is the one the portal gave it, built on TOCSIN_PUBLIC_URL: the
    # Host header behind a proxy says nothing about it, and a forger could choose it.
    url = portal_url(request.get_full_path())
    expected = twilio_signature(settings.TOCSIN_TWILIO_AUTH_TOKEN, url, request.POST)
    received = request.headers.get("X-Twilio-Signature", "")
    # As bytes: compare_digest refuses str with non-ASCII characters (a forger's header).
    return hmac.compare_digest(expected.encode(), received.encode("utf-8", "replace"))


@csrf_exempt
@require_POST
def acknowledge_call(request, token):
    """Twilio posts here when the person called presses a key (the call's <Gather
    action>). "1" acknowledges as the token's user. Every answer but a forged request is
    TwiML with HTTP 200: on an error status Twilio plays only its own "application error",
    while the person on the phone needs to hear what happened."""
    if settings.TOCSIN_TWILIO_AUTH_TOKEN and not signed_by_twilio(request):
        return HttpResponseForbidden("The X-Twilio-Signature does not match.",
                                     content_type="text/plain")
    try:
        user, incident = link_target(token)
    except Refusal as refusal:
        return twiml_say(f"This acknowledge link is no longer valid. {refusal.message} "
                         "Goodbye.")
    if request.POST.get("Digits", "").strip() != "1":
        return twiml_say(f"Incident {incident.number} was not acknowledged. Goodbye.")
    if lifecycle.acknowledge(incident, actor=user, note="by phone"):
        return twiml_say(f"Incident {incident.number} acknowledged. Goodbye.")
    done = settled(incident)
    return twiml_say(f"Incident {incident.number} was already {done.status_label} "
                     f"{done.by}. Goodbye.")
