"""Editing a rotation never rewrites shifts that have started (docs/on-call.md#schedules).

Before a changed rotation is saved, its previous definition goes into Rotation.history
with the instant it stops applying: the end of its shift in progress, so today's shift
stays as it was and the new definition takes over at the next handoff. The engine
(oncall/shifts.py) uses each earlier definition before its ``until`` and the current one
after the last ``until``.
"""

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from django.db.models.signals import pre_save
from django.dispatch import receiver
from django.utils import timezone

from oncall.models import Rotation
from oncall.shift_engine import RotationSpec, handoff_of, shift_in_progress, shift_start
from oncall.shifts import rotation_specs

# What decides who is on call when; the name and the schedule are not part of it.
DEFINITION_FIELDS = ("layer", "shift_kind", "shift_length", "handoff_date", "handoff_time",
                     "participants", "restrictions")


def definition(rotation: Rotation) -> dict:
    """The fields that decide the shifts, in the form history stores them. Dates and times
    may still be strings on an instance a form or serializer has just filled."""
    handoff_date, handoff_time = rotation.handoff_date, rotation.handoff_time
    if isinstance(handoff_date, str):
        handoff_date = date.fromisoformat(handoff_date)
    if isinstance(handoff_time, str):
        handoff_time = time.fromisoformat(handoff_time)
    return {
        "layer": int(rotation.layer),
        "shift_kind": rotation.shift_kind,
        "shift_length": int(rotation.shift_length),
        "handoff_date": handoff_date.isoformat(),
        "handoff_time": handoff_time.replace(tzinfo=None).isoformat(),
        "participants": list(rotation.participants or []),
        "restrictions": list(rotation.restrictions or []),
    }


def history_entry(previous: Rotation, now: datetime) -> dict | None:
    """The history entry recording ``previous`` (the stored row) as it is replaced at
    ``now``: its definition and ``until``; None when it never applied and never will
    (the rotation has not started yet, or the previous edit has not taken over yet)."""
    spec = rotation_specs(previous)[-1]
    zone = ZoneInfo(previous.schedule.time_zone)
    began = spec.valid_from or shift_start(spec, 0, zone)
    if now < began:
        return None
    shift = shift_in_progress(spec, zone, now)
    until = shift[1] if shift is not None else now
    return {**definition(previous), "until": until.astimezone(UTC).isoformat()}


def record_history(rotation: Rotation, previous: Rotation, now: datetime) -> None:
    """Add to ``rotation.history`` (not saved) what replacing ``previous`` at ``now``
    must keep. The stored row's history is the truth: an instance loaded before another
    edit may carry an older one."""
    history = list(previous.history or [])
    rotation.history = history
    if definition(rotation) == definition(previous):
        return
    entry = history_entry(previous, now)
    if entry is None and not history and handoff_instant(rotation, previous) < now:
        # Not started yet, but the edit moves the first handoff into the past: the rotation
        # gave nobody before now, and that past must not fill in afterwards.
        entry = {**definition(previous), "until": now.astimezone(UTC).isoformat()}
    if entry is not None:
        history.append(entry)


def handoff_instant(rotation: Rotation, previous: Rotation) -> datetime:
    fields = definition(rotation)
    spec = RotationSpec(
        layer=fields["layer"], shift_kind=fields["shift_kind"],
        shift_length=fields["shift_length"], participants=(),
        handoff=handoff_of(date.fromisoformat(fields["handoff_date"]),
                           time.fromisoformat(fields["handoff_time"])))
    return shift_start(spec, 0, ZoneInfo(previous.schedule.time_zone))


@receiver(pre_save, sender=Rotation, dispatch_uid="oncall.rotation_history")
def keep_started_shifts(sender, instance: Rotation, raw=False, **kwargs):
    if raw or instance.pk is None:
        return
    previous = Rotation.objects.select_related("schedule").filter(pk=instance.pk).first()
    if previous is not None:
        record_history(instance, previous, timezone.now())
