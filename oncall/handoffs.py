"""Handoff notices (docs/on-call.md#handoff-notices): a person is told shortly before
their shift starts, and when an override changes their shifts.

Both are PersonalNotification rows (purpose "handoff") sent through the people's outbox
(oncall/sending.py). Each has a dedup key naming what it announces, so two workers, two
runs of the minute job or a retried request insert it once and only the inserter queues
it: the database's unique constraint decides, not process memory."""

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from oncall import handoff_messages
from oncall.models import ContactMethod, Override, PersonalNotification, Schedule
from oncall.sending import personal_outbox
from oncall.shift_engine import Shift, compute_shifts
from oncall.shifts import load_specs, schedule_spec
from tocsin.actor import current_actor

logger = logging.getLogger(__name__)

Kind = ContactMethod.Kind
Purpose = PersonalNotification.Purpose

# A run looks this far back too, so a shift that started while the job was a little late
# (a busy worker, a restart) is still announced, once.
LATE_RUN_GRACE = timedelta(minutes=2)
# How far ahead a notice looks for the end of the shift it announces.
SHIFT_END_HORIZON = timedelta(days=14)
# An override's notice lists the person's shifts in its interval, this far at most: the
# computation runs after the request's commit, and an override may span a year.
OVERRIDE_SPAN_SHOWN = timedelta(days=31)


# Where a notice goes -------------------------------------------------------------------

@dataclass(frozen=True)
class Recipient:
    user: object
    contact_method: ContactMethod | None
    kind: str
    address: str


def recipient(user) -> Recipient | None:
    """The user's first enabled contact method by id, leaving voice out (a phone call to
    say that a shift starts in 15 minutes is an alarm, not a notice, and cannot carry the
    times well); else the account's email address; None when there is neither."""
    method = (ContactMethod.objects.filter(user=user, enabled=True)
              .exclude(kind=Kind.VOICE).order_by("id").first())
    if method is not None:
        return Recipient(user, method, method.kind, method.address)
    if user.email:
        return Recipient(user, None, Kind.EMAIL, user.email)
    return None


def record_notice(user, dedup_key: str, notice: handoff_messages.Notice) -> bool:
    """Insert the notice for ``user`` and queue it once this transaction commits; False
    when it was recorded before (the dedup key) or the user cannot be reached."""
    to = recipient(user)
    if to is None:
        logger.info("No contact method or email address for %s: notice %s not sent",
                    user, dedup_key)
        return False
    message = notice.for_kind(to.kind)
    try:
        with transaction.atomic():
            row = PersonalNotification.objects.create(
                user=user, contact_method=to.contact_method, kind=to.kind,
                address=to.address, purpose=Purpose.HANDOFF, subject=message.subject[:255],
                text=message.text, dedup_key=dedup_key[:255],
                next_attempt_at=timezone.now())
    except IntegrityError:
        return False  # recorded by another run or worker, which queues it
    personal_outbox.enqueue_on_commit(row.pk)
    return True


# Shifts starting soon: the minute job --------------------------------------------------

def real_starts(shifts: list[Shift], after: datetime) -> list[Shift]:
    """The shifts that start a person's time on call: after ``after`` (where the
    computation was cut off, so an earlier start is unknown), and not the continuation of
    a shift of the same person ending at that instant (an override's stretch next to the
    rotation's keeps them on call)."""
    ends = {(shift.user_id, shift.end) for shift in shifts}
    return [shift for shift in shifts
            if shift.start > after and (shift.user_id, shift.start) not in ends]


def continuous_end(shifts: list[Shift], user_id: int, start: datetime) -> datetime:
    """Where the person's time on call beginning at ``start`` ends, across touching
    shifts (a rotation's shift, then an override's stretch)."""
    end = start
    by_start = {(shift.user_id, shift.start): shift.end for shift in shifts}
    while (user_id, end) in by_start:
        end = by_start[(user_id, end)]
    return end


def predecessors(shifts: list[Shift], start: datetime, user_id: int) -> list[int]:
    """Who was on call just before ``start`` and is not after it: who hands over."""
    before = {shift.user_id for shift in shifts if shift.start < start <= shift.end}
    after = {shift.user_id for shift in shifts if shift.start <= start < shift.end}
    return sorted(before - after - {user_id})


def send_handoff_notices(now: datetime | None = None) -> int:
    """The minute job: one notice per shift starting within the next
    TOCSIN_HANDOFF_NOTICE_MINUTES of every schedule. Returns how many were recorded."""
    minutes = settings.TOCSIN_HANDOFF_NOTICE_MINUTES
    if minutes <= 0:
        return 0
    now = now or timezone.now()
    since, until = now - LATE_RUN_GRACE, now + timedelta(minutes=minutes)
    schedules = list(Schedule.objects.select_related("team"))
    specs = load_specs(schedules, since, until)
    recorded = 0
    for schedule in schedules:
        starting = real_starts(compute_shifts(specs[schedule.pk], since, until), since)
        if starting:
            recorded += announce_shifts(schedule, starting, since)
    return recorded


def announce_shifts(schedule: Schedule, starting: list[Shift], since: datetime) -> int:
    horizon = max(shift.start for shift in starting) + SHIFT_END_HORIZON
    # Longer than the job's window, for the shifts' ends: only for a schedule with a
    # shift starting, so most runs compute a few minutes per schedule.
    longer = compute_shifts(schedule_spec(schedule, since, horizon), since, horizon)
    users = get_user_model().objects.in_bulk(
        {shift.user_id for shift in starting}
        | {user_id for shift in starting for user_id in predecessors(longer, shift.start,
                                                                      shift.user_id)})
    recorded = 0
    for shift in starting:
        user = users.get(shift.user_id)
        if user is None or not user.is_active:
            continue
        end = continuous_end(longer, shift.user_id, shift.start)
        notice = handoff_messages.shift_notice(
            schedule, user, shift.start, end, open_ended=end >= horizon,
            taking_over_from=[users[pk] for pk in predecessors(longer, shift.start, user.pk)
                              if pk in users],
            by_override=shift.override_id is not None)
        key = f"handoff:{schedule.pk}:{user.pk}:{shift.start:%Y%m%dT%H%M%S}"
        with transaction.atomic():
            recorded += record_notice(user, key, notice)
    return recorded


# Overrides created, changed or deleted -------------------------------------------------

@dataclass(frozen=True)
class OverrideState:
    """An override as it was saved or deleted: what the notice is computed from after the
    transaction commits, when the row may be gone."""

    pk: int
    schedule_id: int
    start: datetime
    end: datetime
    user_id: int
    replaces_id: int | None

    @classmethod
    def of(cls, override: Override) -> "OverrideState":
        return cls(override.pk, override.schedule_id, override.start, override.end,
                   override.user_id, override.replaces_id)


def remember_previous(sender, instance: Override, raw=False, **kwargs):
    """pre_save: keep the stored version of an edited override, to tell its people."""
    if raw or instance.pk is None:
        return
    previous = Override.objects.filter(pk=instance.pk).first()
    instance.state_before_save = OverrideState.of(previous) if previous else None


def override_saved(sender, instance: Override, created: bool, raw=False, **kwargs):
    if raw:
        return  # loaddata
    before = None if created else getattr(instance, "state_before_save", None)
    after = OverrideState.of(instance)
    if before == after:
        return  # saved without a change that matters to anyone's shifts
    action = "added" if before is None else "changed"
    notify_after_commit(action, after, before, current_actor(), instance.created_by_id)


def override_deleted(sender, instance: Override, **kwargs):
    notify_after_commit("removed", OverrideState.of(instance), None, current_actor(), None)


def notify_after_commit(action, state, before, actor, created_by_id) -> None:
    # After the commit: the shifts are computed from what was committed, a rolled-back
    # change tells nobody, and a failure here (logged) never undoes the override. The
    # request's user names who did it; else (a script) the override's creator, loaded
    # only then, so saving an override costs no query for this.
    def notify():
        by = actor or (get_user_model().objects.filter(pk=created_by_id).first()
                       if created_by_id else None)
        notify_override_change(action, state, before=before, actor=by)

    transaction.on_commit(notify, robust=True)


def notify_override_change(action: str, state: OverrideState, *,
                           before: OverrideState | None = None, actor=None,
                           now: datetime | None = None) -> int:
    """Tell the people whose shifts the override's change touches: its user, and the one
    it replaces, or, replacing everyone, those the layers put on call in its interval
    (for an edit, of both versions). Nothing when the interval is entirely past or the
    schedule is gone. Returns how many notices were recorded."""
    now = now or timezone.now()
    versions = [version for version in (state, before) if version is not None]
    if all(version.end <= now for version in versions):
        return 0
    schedule = Schedule.objects.filter(pk=state.schedule_id).first()
    if schedule is None:
        return 0  # deleted with its schedule: no shifts left to announce
    start = max(min(version.start for version in versions), now)
    end = min(max(version.end for version in versions), start + OVERRIDE_SPAN_SHOWN)
    spec = schedule_spec(schedule, start, end)
    shifts_now = compute_shifts(spec, start, end)
    without = replace(spec, overrides=tuple(
        override for override in spec.overrides if override.override_id != state.pk))
    layer_users = {shift.user_id for shift in compute_shifts(without, start, end)}
    affected = set()
    for version in versions:
        affected.add(version.user_id)
        # The one replaced hears of it only if the layers had them on call then; replacing
        # everyone touches whoever the layers had.
        affected |= {version.replaces_id} & layer_users if version.replaces_id \
            else layer_users
    users = get_user_model().objects.in_bulk(
        affected | {version.replaces_id for version in versions if version.replaces_id}
        | {version.user_id for version in versions})
    recorded = 0
    for user_id in sorted(affected):
        user = users.get(user_id)
        if user is None or not user.is_active:
            continue
        notice = handoff_messages.override_notice(
            schedule, user, action, state, before, users, actor=actor,
            own_shifts=[shift for shift in shifts_now if shift.user_id == user_id],
            shown=(start, end))
        key = (f"override:{state.pk}:{action}:{user_id}:"
               f"{state.start:%Y%m%dT%H%M%S}-{state.end:%Y%m%dT%H%M%S}:"
               f"{state.user_id}:{state.replaces_id or 'all'}")
        with transaction.atomic():
            recorded += record_notice(user, key, notice)
    return recorded
