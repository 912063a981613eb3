"""Rows that record work to send (deliveries, notification emails) share one life cycle:
``pending`` → claimed by one worker → ``sent``, ``failed``, or pending again with a later
``next_attempt_at``. These helpers are the conditional UPDATEs and queries of that cycle,
for any model with ``status``, ``attempts``, ``next_attempt_at`` and ``claimed_until``.
"""

import random
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

PENDING, SENT, FAILED = "pending", "sent", "failed"
# Longer than a send can take (HTTP timeout × redirects, a slow SMTP server), so a live
# worker never loses its claim; a dead one's claim expires and the sweeper sends again.
CLAIM_SECONDS = 300
# The sweeper leaves a pending row alone until it is this late: a fresh one is normally
# still in the queue, and queueing it again would only add a duplicate task.
SWEEP_GRACE_SECONDS = 60


def unclaimed(now) -> Q:
    return Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)


def claim(model, pk: int, **also) -> bool:
    """Take a due, unclaimed pending row for this worker; only one worker's UPDATE matches.
    ``also`` are further fields to set in the same UPDATE."""
    now = timezone.now()
    return bool(
        model.objects.filter(pk=pk, status=PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(unclaimed(now))
        .update(claimed_until=now + timedelta(seconds=CLAIM_SECONDS),
                attempts=F("attempts") + 1, **also)
    )


def reopen(model, pk: int) -> bool:
    """Make a sent or failed row pending again, due now (a re-send). Its attempts start
    again from zero, so a re-send gets the full retry budget, not one last try."""
    return bool(
        model.objects.filter(pk=pk, status__in=[SENT, FAILED]).update(
            status=PENDING, next_attempt_at=timezone.now(), claimed_until=None, error="",
            attempts=0)
    )


def overdue_ids(model, limit: int = 1000) -> list[int]:
    """Pending rows more than SWEEP_GRACE_SECONDS past due and not claimed: their task was
    lost (a broker outage, a killed worker) and they need queueing again."""
    now = timezone.now()
    return list(
        model.objects.filter(status=PENDING,
                             next_attempt_at__lte=now - timedelta(seconds=SWEEP_GRACE_SECONDS))
        .filter(unclaimed(now))
        .order_by("next_attempt_at").values_list("pk", flat=True)[:limit]
    )


def backoff_seconds(attempts: int, retry_after: float | None) -> float:
    ceiling = settings.TOCSIN_DELIVERY_RETRY_MAX_SECONDS
    if retry_after is not None:
        return min(retry_after, ceiling)
    delay = settings.TOCSIN_DELIVERY_RETRY_BASE_SECONDS * 2 ** (attempts - 1)
    # Jitter spreads the retries of many deliveries that failed together (a remote outage).
    return min(delay, ceiling) * random.uniform(0.8, 1.2)


def retry_or_fail(model, row, error, schedule_retry, **outcome):
    """Record a failed attempt of ``row``: pending again with a backed-off due time (and
    ``schedule_retry(pk, due)``), returning that time; or, when ``error.permanent`` or
    the attempts are used up, failed, returning None. ``outcome`` adds fields to store."""
    outcome = {"claimed_until": None, "error": str(error)[:5000], **outcome}
    if not error.permanent and row.attempts < settings.TOCSIN_DELIVERY_MAX_ATTEMPTS:
        due = timezone.now() + timedelta(
            seconds=backoff_seconds(row.attempts, error.retry_after))
        model.objects.filter(pk=row.pk).update(next_attempt_at=due, **outcome)
        schedule_retry(row.pk, due)
        return due
    model.objects.filter(pk=row.pk).update(status=FAILED, next_attempt_at=None, **outcome)
    return None
