"""Rows that record work to send (deliveries, notification emails) share one life cycle:
``pending`` → claimed by one worker → ``sent``, ``failed``, or pending again with a later
``next_attempt_at``. These helpers are the conditional UPDATEs and queries of that cycle,
for any model with ``status``, ``attempts``, ``next_attempt_at`` and ``claimed_until``.

A model whose rows must go out in an order (deliveries of one destination and incident) passes
``waiting``: a filter expression, true for a row that must wait its turn. Claims and the
sweeper then skip those rows inside the same query, so the database decides, not a worker.
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


def claim(model, pk: int, *, waiting=None, **also) -> bool:
    """Take a due, unclaimed pending row for this worker; only one worker's UPDATE matches.
    A row for which ``waiting`` holds is not taken. ``also`` are further fields to set in
    the same UPDATE."""
    now = timezone.now()
    rows = (
        model.objects.filter(pk=pk, status=PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(unclaimed(now))
    )
    if waiting is not None:
        rows = rows.filter(~waiting)
    return bool(rows.update(claimed_until=now + timedelta(seconds=CLAIM_SECONDS),
                            attempts=F("attempts") + 1, **also))


def reopen(model, pk: int) -> bool:
    """Make a sent or failed row pending again, due now (a re-send). Its attempts start
    again from zero, so a re-send gets the full retry budget, not one last try."""
    return reopen_all(model, [pk]) == 1


def reopen_all(model, pks) -> int:
    """``reopen`` for several rows in one UPDATE; returns how many were sent or failed."""
    return model.objects.filter(pk__in=pks, status__in=[SENT, FAILED]).update(
        status=PENDING, next_attempt_at=timezone.now(), claimed_until=None, error="",
        attempts=0)


def overdue_ids(model, limit: int = 1000, *, waiting=None) -> list[int]:
    """Pending rows more than SWEEP_GRACE_SECONDS past due and not claimed: their task was
    lost (a broker outage, a killed worker) and they need queueing again. Rows for which
    ``waiting`` holds are left out: queueing them would do nothing, and a long queue of
    them must not crowd the rows that can go out now past ``limit``."""
    now = timezone.now()
    rows = model.objects.filter(
        status=PENDING, next_attempt_at__lte=now - timedelta(seconds=SWEEP_GRACE_SECONDS)
    ).filter(unclaimed(now))
    if waiting is not None:
        rows = rows.filter(~waiting)
    return list(rows.order_by("next_attempt_at").values_list("pk", flat=True)[:limit])


def backoff_seconds(attempts: int, retry_after: float | None) -> float:
    """Seconds until the next attempt after ``attempts`` failed ones: exponential backoff
    with jitter, or the remote's Retry-After when that is longer, at most RETRY_MAX.

    A Retry-After may ask for a longer wait, never a shorter one: "0" or a date in the
    past would otherwise retry at once, and a remote answering 429 that way would use up
    every attempt within seconds and fail the delivery for good."""
    ceiling = settings.TOCSIN_DELIVERY_RETRY_MAX_SECONDS
    delay = settings.TOCSIN_DELIVERY_RETRY_BASE_SECONDS * 2 ** (attempts - 1)
    # Jitter spreads the retries of many deliveries that failed together (a remote outage);
    # the ceiling applies after it, so no wait is ever longer than documented.
    backoff = delay * random.uniform(0.8, 1.2)
    return min(max(retry_after or 0, backoff), ceiling)


def retry_or_fail(model, row, error, schedule_retry, *, note: str = "", **outcome):
    """Record a failed attempt of ``row``: pending again with a backed-off due time (and
    ``schedule_retry(pk, due)``), returning that time; or, when ``error.permanent`` or
    the attempts are used up, failed, returning None. ``note`` follows the error text on
    the row; ``outcome`` adds fields to store."""
    # The note is short; cutting the error (not the note) keeps both within the column.
    text = f"{str(error)[:4000]}\n{note}" if note else str(error)
    outcome = {"claimed_until": None, "error": text[:5000], **outcome}
    if not error.permanent and row.attempts < settings.TOCSIN_DELIVERY_MAX_ATTEMPTS:
        due = timezone.now() + timedelta(
            seconds=backoff_seconds(row.attempts, error.retry_after))
        model.objects.filter(pk=row.pk).update(next_attempt_at=due, **outcome)
        schedule_retry(row.pk, due)
        return due
    model.objects.filter(pk=row.pk).update(status=FAILED, next_attempt_at=None, **outcome)
    return None
