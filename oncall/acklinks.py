"""Acknowledge links: ``<TOCSIN_PUBLIC_URL>/ack/<token>/``, signed for one user and one
incident and valid for 24 hours (docs/on-call.md#acknowledge-links).

The token is Django's signed, timestamped value of "<user id>:<incident id>" under a salt
of its own, so no other signed value of the portal (a session, a password reset) can be
passed off as one, and it needs no table: nothing to clean up, nothing to leak."""

from dataclasses import dataclass

from django.core import signing
from django.urls import reverse

from tocsin.links import portal_url

SALT = "tocsin.oncall.acknowledge-link"
VALID_SECONDS = 24 * 3600


class LinkError(Exception):
    """The token cannot be used; ``expired`` tells a too-old link from a forged one."""

    def __init__(self, message: str, *, expired: bool = False):
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True)
class LinkTarget:
    user_id: int
    incident_id: int


def make_token(user_id: int, incident_id: int) -> str:
    return signing.TimestampSigner(salt=SALT).sign(f"{user_id}:{incident_id}")


def read_token(token: str, *, max_age: int = VALID_SECONDS) -> LinkTarget:
    """The user and incident a token was signed for; LinkError when it is expired,
    tampered with or not a token at all."""
    try:
        value = signing.TimestampSigner(salt=SALT).unsign(token, max_age=max_age)
    except signing.SignatureExpired as exc:
        raise LinkError("This acknowledge link has expired.", expired=True) from exc
    except signing.BadSignature as exc:
        raise LinkError("This acknowledge link is not valid.") from exc
    user_id, _, incident_id = value.partition(":")
    # Only ASCII digits: str.isdigit() also accepts other scripts' digits and superscripts.
    if not (user_id.isascii() and user_id.isdigit() and incident_id.isascii()
            and incident_id.isdigit()):
        raise LinkError("This acknowledge link is not valid.")
    return LinkTarget(int(user_id), int(incident_id))


def ack_url(user_id: int, incident_id: int) -> str:
    """The absolute acknowledge link a page carries."""
    return portal_url(reverse("acknowledge-link", args=[make_token(user_id, incident_id)]))


def ack_call_url(user_id: int, incident_id: int) -> str:
    """The absolute address a voice call's <Gather action> posts the pressed key to; Twilio
    signs its request with this very URL, and the view checks it against the same."""
    return portal_url(reverse("acknowledge-call", args=[make_token(user_id, incident_id)]))
