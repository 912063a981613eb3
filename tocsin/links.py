"""Absolute links into the portal, for what is read outside it (deliveries, emails)."""

from django.conf import settings


def portal_url(path: str) -> str:
    """``path`` (as reverse() gives it) on the address users reach the portal at."""
    return f"{settings.TOCSIN_PUBLIC_URL}{path}"
