"""Admin sign-in lockout (django-axes, docs/security.md): the client's address and the
authentication backend."""

from axes.backends import AxesStandaloneBackend
from django.conf import settings


def client_ip(request) -> str:
    """REMOTE_ADDR, or behind TOCSIN_PROXY_COUNT trusted reverse proxies the address the
    outermost of them saw. Each proxy appends the address it received the request from to
    X-Forwarded-For, so only the last TOCSIN_PROXY_COUNT entries are trustworthy: anything
    left of them may have been sent by the client itself."""
    remote = request.META.get("REMOTE_ADDR", "")
    count = settings.TOCSIN_PROXY_COUNT
    if count <= 0:
        return remote
    forwarded = [
        part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        if part.strip()
    ]
    if len(forwarded) < count:
        # Fewer entries than proxies: the request did not come through all of them.
        return remote
    return forwarded[-count]


class LockoutBackend(AxesStandaloneBackend):
    """django-axes' backend, except that authenticate() without a request passes through
    to the next backend instead of raising. Such calls come from no client at all (the
    test client's login(), scripts), so there is no address to lock; every sign-in over
    HTTP (the admin's login form) passes its request and is checked."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)
