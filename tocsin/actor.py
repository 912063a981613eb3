"""Who is acting in the current request, for "by whom" in notifications.

The middleware remembers the request (not the user: DRF authenticates tokens later, in the
view, and then sets the user on this same request). Only attribution reads this; nothing
that decides correctness does.
"""

from contextvars import ContextVar

_request = ContextVar("tocsin_request", default=None)


class CurrentRequestMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)


def current_actor():
    """The signed-in user of the current request, or None (a worker, a command)."""
    user = getattr(_request.get(), "user", None)
    return user if user is not None and user.is_authenticated else None
