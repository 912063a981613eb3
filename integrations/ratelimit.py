"""Fixed-window rate limits shared by every web process and host."""

import math
import time

from django.conf import settings
from django.core.cache import cache
from django.db import connection

from integrations.models import RateLimitCounter

PERIOD_SECONDS = 60


def _count_in_database(key: str, window: int) -> int:
    # One statement that both SQLite (3.35+) and PostgreSQL run atomically: the database,
    # not a read-modify-write in Python, decides the count.
    table = RateLimitCounter._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (scope, slot, hits) VALUES (%s, %s, 1) "
            f"ON CONFLICT (scope, slot) DO UPDATE SET hits = {table}.hits + 1 RETURNING hits",
            [key, window],
        )
        return cursor.fetchone()[0]


def _count_in_cache(key: str, window: int) -> int:
    cache_key = f"ratelimit:{key}:{window}"
    cache.add(cache_key, 0, timeout=PERIOD_SECONDS * 2)
    return cache.incr(cache_key)  # atomic in Redis


def retry_after(key: str, limit: int) -> int | None:
    """Count a hit. Returns None if allowed, else the seconds until the window ends."""
    if limit <= 0:
        return None
    now = time.time()
    window = int(now // PERIOD_SECONDS)
    counter = _count_in_cache if settings.REDIS_URL else _count_in_database
    if counter(key, window) <= limit:
        return None
    return max(1, math.ceil((window + 1) * PERIOD_SECONDS - now))


def integration_retry_after(integration) -> int | None:
    """Count one request or mail against the integration's limit (the same count for every
    ingest path); None if allowed, else the seconds until the window ends."""
    return retry_after(f"integration:{integration.pk}", integration.rate_limit_per_minute)


def prune_old_windows() -> int:
    current = int(time.time() // PERIOD_SECONDS)
    deleted, _ = RateLimitCounter.objects.filter(slot__lt=current - 1).delete()
    return deleted
