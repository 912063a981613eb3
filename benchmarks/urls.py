"""Tocsin's URLs plus ``POST /bench/baseline/``, the ceiling the ingest endpoint is measured
against: the same request through the same middleware, doing one bare INSERT.

The table is created by benchmarks/ingest.py before the run, so no migration is needed.
"""

from django.db import connection
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from tocsin.urls import handler404, handler500  # noqa: F401 (Django looks them up here)
from tocsin.urls import urlpatterns as tocsin_urlpatterns

BASELINE_TABLE = "bench_baseline"


@csrf_exempt
def baseline(request):
    if request.method != "POST":
        return JsonResponse({"message": "Use POST"}, status=405)
    body = request.body.decode("utf-8", errors="replace")
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {BASELINE_TABLE} (body) VALUES (%s)", [body])
    return JsonResponse({"message": "success"})


urlpatterns = [path("bench/baseline/", baseline, name="bench-baseline"), *tocsin_urlpatterns]
