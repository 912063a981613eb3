"""The outbox: work to send (a delivery to a destination, a portal email), recorded as a row
before it is sent, and sent by a queue task that records how it went.

Every outbox row has one life cycle: ``pending`` → claimed by one worker → ``sent``,
``failed``, or pending again with a later ``next_attempt_at``. ``OutboxItem`` holds the
fields of that cycle; ``Outbox`` is the one implementation of it. A concrete outbox is a
model subclassing ``OutboxItem`` and an ``Outbox`` subclass that names the model, its send
task (a dotted path that django-q2 stores) and its queue group, and implements ``send``::

    class PageOutbox(Outbox):
        model = Page
        task = "paging.sending.send_page"
        group = "pages"

        def send(self, page: Page) -> Result:
            return twilio_sms(page.phone_number, page.text)  # built on transport.http

    pages = PageOutbox()

    def send_page(page_id: int) -> str:  # the task
        return pages.process(page_id)

Claims, retries with backoff, re-sends and the sweeper then work as they do for deliveries
and notifications (docs/destinations.md, docs/notifications.md).

A model whose rows must go out in an order (deliveries of one destination and incident)
returns a filter expression from ``waiting``, true for a row that must wait its turn.
Claims and the sweeper skip those rows inside the same query, so the database decides, not
a worker.
"""

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone

from tocsin import taskqueue
from tocsin.transport import Result, TransportError

logger = logging.getLogger(__name__)

# Longer than a send can take (HTTP timeout × redirects, a slow SMTP server), so a live
# worker never loses its claim; a dead one's claim expires and the sweeper sends again.
CLAIM_SECONDS = 300
# The sweeper leaves a pending row alone until it is this late: a fresh one is normally
# still in the queue, and queueing it again would only add a duplicate task.
SWEEP_GRACE_SECONDS = 60
# The error column keeps this much; a note added to an error keeps its place in it.
ERROR_CHARS = 5000


class OutboxItem(models.Model):
    """One thing to send and every attempt's outcome. Abstract: each outbox is a table."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        # Not sent because it was no longer wanted when it came due (a page's message after
        # the incident was acknowledged): not a failure, and shown as such.
        CANCELLED = "cancelled", "Cancelled"

    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    # Why the last attempt failed, or a note for whoever reads the record.
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A worker owns the row until this time; a crashed worker's claim simply expires.
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]
        # The sweeper's query: pending rows by due time.
        indexes = [models.Index(fields=["status", "next_attempt_at"])]


Status = OutboxItem.Status


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a row gets and how long apart they are."""

    max_attempts: int
    base_seconds: float
    max_seconds: float

    @classmethod
    def from_settings(cls) -> "RetryPolicy":
        """The portal's policy: TOCSIN_DELIVERY_MAX_ATTEMPTS, _RETRY_BASE_SECONDS and
        _RETRY_MAX_SECONDS (docs/configuration.md), for deliveries and emails alike."""
        return cls(max_attempts=settings.TOCSIN_DELIVERY_MAX_ATTEMPTS,
                   base_seconds=settings.TOCSIN_DELIVERY_RETRY_BASE_SECONDS,
                   max_seconds=settings.TOCSIN_DELIVERY_RETRY_MAX_SECONDS)

    def retries(self, attempts: int, error: TransportError) -> bool:
        return not error.permanent and attempts < self.max_attempts

    def backoff_seconds(self, attempts: int, retry_after: float | None) -> float:
        """Seconds until the next attempt after ``attempts`` failed ones: exponential backoff
        with jitter, or the remote's Retry-After when that is longer, at most max_seconds.

        A Retry-After may ask for a longer wait, never a shorter one: "0" or a date in the
        past would otherwise retry at once, and a remote answering 429 that way would use up
        every attempt within seconds and fail the row for good."""
        delay = self.base_seconds * 2 ** (attempts - 1)
        # Jitter spreads the retries of many rows that failed together (a remote outage);
        # the ceiling applies after it, so no wait is ever longer than documented.
        backoff = delay * random.uniform(0.8, 1.2)
        return min(max(retry_after or 0, backoff), self.max_seconds)


def unclaimed(now: datetime) -> Q:
    return Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)


class Outbox:
    """Sending the rows of one ``OutboxItem`` model. Subclasses name ``model``, ``task``
    and ``group`` and implement ``send``; the other methods are hooks with defaults."""

    model: type[OutboxItem]
    # Dotted path of the queue task, called with a row's pk; usually calls ``process``.
    task: str
    # django-q2 group of the queued tasks (the task log is filtered by it).
    group: str
    # Related rows ``send`` reads, loaded with the row.
    select_related: tuple[str, ...] = ()

    # Hooks ----------------------------------------------------------------------------

    def send(self, row: OutboxItem) -> Result:
        """Send the row once; raise TransportError when that did not work."""
        raise NotImplementedError

    def waiting(self) -> Q | models.Expression | None:
        """A filter expression true for rows that must wait for others; None: none wait."""
        return None

    def retry_policy(self) -> RetryPolicy:
        # Built at each failure from the settings, so a test (or a process) that changes
        # them sees the change at once.
        return RetryPolicy.from_settings()

    def claim_refused(self, pk: int) -> str:
        """What a task whose claim was refused reports (its result in the task log)."""
        return "not due or already taken"

    def note(self, row: OutboxItem) -> str:
        """Text to keep in ``error`` with this attempt's outcome, whatever it is."""
        return ""

    def sent_fields(self, result: Result) -> dict:
        """Further fields to store with a success."""
        return {}

    def failure_fields(self, error: TransportError) -> dict:
        """Further fields to store with a failed attempt."""
        return {}

    def on_sent(self, row: OutboxItem, result: Result) -> None:
        """Runs in the transaction that records the success (see ``run_hook``): no slow
        work here, and nothing that must not be undone."""

    def on_failed(self, row: OutboxItem, error: TransportError) -> None:
        """Runs in the transaction that records the final failure (no retry is left); see
        ``run_hook``."""

    # The life cycle ---------------------------------------------------------------------

    def process(self, pk: int) -> str:
        """The queue task's body: claim, send, record. Returns what happened, for the log."""
        if not self.claim(pk):
            return self.claim_refused(pk)
        row = self.model.objects.select_related(*self.select_related).get(pk=pk)
        note = self.note(row)
        try:
            result = self.send(row)
        except TransportError as exc:
            return self.record_failure(row, exc, note=note)
        except Exception as exc:
            # A bug or an unexpected backend error, not the other side: record it (never
            # leave the row claimed with no error); a person can re-send after a fix.
            logger.exception("%s %s raised unexpectedly",
                             self.model._meta.verbose_name.capitalize(), pk)
            error = TransportError(f"{exc.__class__.__name__}: {exc}", permanent=True)
            return self.record_failure(row, error, note=note)
        return self.record_success(row, result, note=note)

    def claim(self, pk: int) -> bool:
        """Take a due, unclaimed pending row for this worker; only one worker's UPDATE
        matches. A row that is ``waiting`` is not taken."""
        now = timezone.now()
        rows = (
            self.model.objects.filter(pk=pk, status=Status.PENDING)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .filter(unclaimed(now))
        )
        waiting = self.waiting()
        if waiting is not None:
            rows = rows.filter(~waiting)
        return bool(rows.update(claimed_until=now + timedelta(seconds=CLAIM_SECONDS),
                                attempts=F("attempts") + 1, last_attempt_at=now))

    def record_success(self, row: OutboxItem, result: Result, *, note: str = "") -> str:
        # One transaction: the row is sent together with what the app records about it
        # (``on_sent``), or, if that fails, still claimed and sent again after the claim.
        with transaction.atomic():
            self.model.objects.filter(pk=row.pk).update(
                status=Status.SENT, sent_at=timezone.now(), claimed_until=None,
                next_attempt_at=None, error=note, **self.sent_fields(result))
            self.run_hook(self.on_sent, row, result)
        return "sent"

    def record_failure(self, row: OutboxItem, error: TransportError, *, note: str = "") -> str:
        """Pending again with a backed-off due time (and a one-off schedule for then), or
        failed when the error is permanent or the attempts are used up."""
        # The note is short; cutting the error (not the note) keeps both within the column.
        text = f"{str(error)[:ERROR_CHARS - 1000]}\n{note}" if note else str(error)
        outcome = {"claimed_until": None, "error": text[:ERROR_CHARS],
                   **self.failure_fields(error)}
        policy = self.retry_policy()
        with transaction.atomic():
            if policy.retries(row.attempts, error):
                due = timezone.now() + timedelta(
                    seconds=policy.backoff_seconds(row.attempts, error.retry_after))
                self.model.objects.filter(pk=row.pk).update(next_attempt_at=due, **outcome)
                transaction.on_commit(lambda: self.schedule(row.pk, due))
                return f"retry at {due.isoformat()}"
            self.model.objects.filter(pk=row.pk).update(
                status=Status.FAILED, next_attempt_at=None, **outcome)
            self.run_hook(self.on_failed, row, error)
        return "failed"

    def run_hook(self, hook, row: OutboxItem, outcome) -> None:
        """Run ``on_sent`` or ``on_failed`` inside the outcome's transaction, in a savepoint
        of its own. What the hook records commits with the row's new status or not at all;
        but a hook that raises (a bug, a signal receiver's error) must not undo the status:
        the row would stay pending, be claimed again once its claim expired, and the other
        side would receive the same message every few minutes, for ever. So the status is
        kept, and the hook's failure is logged and written on the row for a person."""
        try:
            with transaction.atomic():
                hook(row, outcome)
        except Exception as exc:
            logger.exception("Recording what follows from %s %s failed",
                             self.model._meta.verbose_name, row.pk)
            problem = (f"Recorded, but what follows from it was not: "
                       f"{exc.__class__.__name__}: {exc}")[:1000]
            earlier = self.model.objects.filter(pk=row.pk).values_list("error", flat=True)
            kept = (earlier.first() or "")[:ERROR_CHARS - len(problem) - 1]
            self.model.objects.filter(pk=row.pk).update(
                error=f"{kept}\n{problem}" if kept else problem)

    def reopen(self, pks) -> int:
        """Make sent, failed or cancelled rows pending again, due now (a re-send); returns
        how many. Their attempts start again from zero, so a re-send gets the full retry
        budget."""
        return self.model.objects.filter(
            pk__in=pks, status__in=[Status.SENT, Status.FAILED, Status.CANCELLED]) \
            .update(status=Status.PENDING, next_attempt_at=timezone.now(), claimed_until=None,
                    error="", attempts=0)

    def overdue_ids(self, limit: int = 1000) -> list[int]:
        """Pending rows more than SWEEP_GRACE_SECONDS past due and not claimed: their task
        was lost (a broker outage, a killed worker, a task naming a module that no longer
        exists) and they need queueing again. Waiting rows are left out: queueing them
        would do nothing, and a long queue of them must not crowd the rows that can go
        out now past ``limit``."""
        now = timezone.now()
        rows = self.model.objects.filter(
            status=Status.PENDING,
            next_attempt_at__lte=now - timedelta(seconds=SWEEP_GRACE_SECONDS),
        ).filter(unclaimed(now))
        waiting = self.waiting()
        if waiting is not None:
            rows = rows.filter(~waiting)
        return list(rows.order_by("next_attempt_at").values_list("pk", flat=True)[:limit])

    def sweep(self, limit: int = 1000) -> int:
        """The minute sweeper: queue again the rows whose task was lost."""
        due = self.overdue_ids(limit)
        for pk in due:
            self.enqueue(pk)
        return len(due)

    # The queue --------------------------------------------------------------------------

    def enqueue(self, pk: int) -> None:
        name = self.model._meta.model_name
        taskqueue.enqueue(self.task, pk, name=f"{name}-{pk}", group=self.group)

    def enqueue_pending(self, **lookup) -> None:
        """Queue every pending row matching ``lookup``: after a commit that recorded rows
        (bulk inserts that ignore conflicts give no ids back, so they are read here)."""
        pending = self.model.objects.filter(status=Status.PENDING, **lookup)
        for pk in pending.values_list("pk", flat=True):
            self.enqueue(pk)

    def enqueue_on_commit(self, pk: int) -> None:
        """Queue the row once the caller's transaction commits (at once outside one), so
        the worker finds what that transaction wrote."""
        transaction.on_commit(lambda: self.enqueue(pk))

    def schedule(self, pk: int, due: datetime) -> None:
        """A one-off schedule to try the row again at ``due``."""
        name = self.model._meta.model_name
        taskqueue.schedule_once(self.task, pk, at=due, name=f"retry {name} {pk} {due:%H%M%S%f}")
