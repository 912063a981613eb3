"""The client's address for the login lockout (django-axes' AXES_CLIENT_IP_CALLABLE)."""

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
