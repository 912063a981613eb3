from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render
from django.views import defaults
from django_q.brokers import get_broker
from django_q.status import Stat


def healthz(request):
    """Liveness and readiness for load balancers: 200 when the database answers."""
    body = {"status": "ok", "database": "ok", "queue": queue_state()}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        body["status"] = "error"
        body["database"] = f"error: {exc.__class__.__name__}"
        return JsonResponse(body, status=503)
    return JsonResponse(body)


def queue_state() -> dict:
    try:
        broker = get_broker()
        return {
            "broker": type(broker).__name__,
            "pending_tasks": broker.queue_size(),
            "workers_running": len(Stat.get_all(broker=broker)),
        }
    except Exception as exc:
        # The queue is reported, not required: the web process keeps accepting alerts
        # (they are stored first) while the broker is down.
        return {"error": exc.__class__.__name__}


def wants_json(request) -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/anymail/")


def not_found(request, exception=None):
    # API clients get JSON they can parse; people in a browser get the usual page.
    if wants_json(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def bad_request(request, exception=None):
    # Django answers a body over DATA_UPLOAD_MAX_MEMORY_SIZE (admin forms, the login page)
    # with a bare 400; say what was wrong, with the status that means it.
    if isinstance(exception, RequestDataTooBig):
        message = f"Request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
        if wants_json(request):
            return JsonResponse({"detail": message}, status=413)
        return render(request, "tocsin/too_large.html", {
            "limit_mb": settings.DATA_UPLOAD_MAX_MEMORY_SIZE / (1024 * 1024),
        }, status=413)
    if wants_json(request):
        return JsonResponse({"detail": "Bad request."}, status=400)
    return defaults.bad_request(request, exception)


def server_error(request):
    if wants_json(request):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return defaults.server_error(request)
