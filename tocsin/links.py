"""Absolute links into the portal, for what is read outside it (deliveries, emails)."""

from django.conf import settings
from django.urls import get_script_prefix


def portal_url(path: str) -> str:
    """``path`` (as reverse() gives it) on the address users reach the portal at.

    TOCSIN_PUBLIC_URL is that whole address, including any path the portal is served under
    behind a proxy. reverse() adds the script prefix of the request in progress, and none in
    a worker; it is taken off here, so a link is the same whichever process builds it and
    the prefix never appears twice."""
    prefix = get_script_prefix()
    if prefix != "/" and path.startswith(prefix):
        path = "/" + path[len(prefix):]
    return f"{settings.TOCSIN_PUBLIC_URL}{path}"  # settings.py strips its trailing /
