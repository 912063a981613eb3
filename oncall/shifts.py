"""Who is on call: a schedule's rotations, layers, restrictions and overrides turned into
shifts (docs/on-call.md#schedules).

The computing is done by the pure core in oncall/shift_engine.py; this module loads
schedules into its plain specs (three queries for any number of schedules) and answers
the questions the API, the admin and escalation ask. ``on_call_at`` is the shifts of
[at, at + 1 µs), so "who is on call now" and the timeline can never disagree.
"""

from dataclasses import replace
from datetime import date, datetime, time

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from oncall.models import Override, Rotation, Schedule
from oncall.shift_engine import (
    ONE_MICROSECOND,
    OverrideSpec,
    RotationSpec,
    ScheduleSpec,
    Shift,
    compute_shifts,
    handoff_of,
    windows_from_restrictions,
)

__all__ = [
    "Shift", "schedule_shifts", "on_call_at", "user_shifts", "on_call_now_everywhere",
    "load_specs", "schedule_spec", "rotation_specs", "replaced_person_is_on_call", "on_call_in",
]


def rotation_specs(rotation: Rotation, existing_user_ids=None) -> list[RotationSpec]:
    """The rotation's definitions over time: each earlier one (Rotation.history) until the
    instant it stopped applying, then the current one. ``existing_user_ids``: when given,
    participants not in it become None (their shifts are nobody's)."""
    specs = []
    valid_from = None
    for entry in rotation.history or []:
        until = parse_datetime(entry["until"])
        specs.append(RotationSpec(
            layer=entry["layer"],
            shift_kind=entry["shift_kind"],
            shift_length=entry["shift_length"],
            handoff=handoff_of(date.fromisoformat(entry["handoff_date"]),
                               time.fromisoformat(entry["handoff_time"])),
            participants=known_participants(entry["participants"], existing_user_ids),
            windows=windows_from_restrictions(entry["restrictions"]),
            valid_from=valid_from,
            valid_until=until,
            rotation_id=rotation.pk,
        ))
        valid_from = until
    specs.append(RotationSpec(
        layer=rotation.layer,
        shift_kind=rotation.shift_kind,
        shift_length=rotation.shift_length,
        handoff=handoff_of(rotation.handoff_date, rotation.handoff_time),
        participants=known_participants(rotation.participants, existing_user_ids),
        windows=windows_from_restrictions(rotation.restrictions or []),
        valid_from=valid_from,
        rotation_id=rotation.pk,
    ))
    return specs


def known_participants(participants, existing_user_ids) -> tuple:
    if existing_user_ids is None:
        return tuple(participants)
    return tuple(user_id if user_id in existing_user_ids else None for user_id in participants)


def participant_ids(rotation: Rotation) -> set:
    ids = set(rotation.participants or [])
    for entry in rotation.history or []:
        ids.update(entry["participants"])
    return ids


def load_specs(schedules, start: datetime, end: datetime) -> dict:
    """{schedule id: ScheduleSpec} for the overrides overlapping [start, end), in three
    queries whatever the number of schedules: rotations, overrides, existing users."""
    by_id = {schedule.pk: schedule for schedule in schedules}
    rotations = {schedule_id: [] for schedule_id in by_id}
    for rotation in Rotation.objects.filter(schedule_id__in=by_id).order_by("id"):
        rotations[rotation.schedule_id].append(rotation)
    overrides = {schedule_id: [] for schedule_id in by_id}
    # Creation order (ids grow with it): where overrides overlap the later one wins.
    for override in Override.objects.filter(
        schedule_id__in=by_id, end__gt=start, start__lt=end
    ).order_by("id"):
        overrides[override.schedule_id].append(OverrideSpec(
            start=override.start, end=override.end, user_id=override.user_id,
            replaces_id=override.replaces_id, override_id=override.pk,
        ))
    wanted = set()
    for schedule_rotations in rotations.values():
        for rotation in schedule_rotations:
            wanted |= participant_ids(rotation)
    wanted = {user_id for user_id in wanted if isinstance(user_id, int)}
    existing = set(get_user_model().objects.filter(pk__in=wanted).values_list("pk", flat=True)
                   ) if wanted else set()
    return {
        schedule_id: ScheduleSpec(
            time_zone=schedule.time_zone,
            fallback_user_id=schedule.fallback_user_id,
            rotations=tuple(spec for rotation in rotations[schedule_id]
                            for spec in rotation_specs(rotation, existing)),
            overrides=tuple(overrides[schedule_id]),
        )
        for schedule_id, schedule in by_id.items()
    }


def schedule_spec(schedule: Schedule, start: datetime, end: datetime) -> ScheduleSpec:
    return load_specs([schedule], start, end)[schedule.pk]


def schedule_shifts(schedule, start: datetime, end: datetime) -> list[Shift]:
    """The final on-call intervals of ``schedule`` between ``start`` and ``end`` (clipped
    to them), after layers, restrictions, overrides and the fallback user; sorted by start,
    then user id; touching intervals of one user merged, except that a stretch an override
    made stays its own interval (with its ``override_id``). Aware datetimes only."""
    return compute_shifts(schedule_spec(schedule, start, end), start, end)


def on_call_at(schedule, at: datetime) -> list[int]:
    """The ids of the users on call at instant ``at`` (sorted)."""
    shifts = schedule_shifts(schedule, at, at + ONE_MICROSECOND)
    return sorted({shift.user_id for shift in shifts})


def user_shifts(user_id: int, start: datetime, end: datetime) -> list[tuple]:
    """[(schedule, Shift)] of one user across every schedule between start and end, by
    start: their upcoming shifts (profile page, handoff notices). Looks only at schedules
    where the user is a participant (now or in a rotation's history), an override's user
    or the fallback user."""
    candidates = set(
        Schedule.objects.filter(
            Q(fallback_user_id=user_id)
            | Q(overrides__user_id=user_id, overrides__end__gt=start, overrides__start__lt=end)
        ).values_list("pk", flat=True)
    )
    # Participants are a JSON list, which SQLite cannot search: read them (a few small
    # rows per schedule) and look in Python.
    for schedule_id, participants, history in Rotation.objects.values_list(
        "schedule_id", "participants", "history"
    ):
        if user_id in participants or any(user_id in entry["participants"]
                                           for entry in history or []):
            candidates.add(schedule_id)
    if not candidates:
        return []
    schedules = list(Schedule.objects.filter(pk__in=candidates))
    specs = load_specs(schedules, start, end)
    found = [
        (schedule, shift)
        for schedule in schedules
        for shift in compute_shifts(specs[schedule.pk], start, end)
        if shift.user_id == user_id
    ]
    found.sort(key=lambda pair: (pair[1].start, pair[0].name))
    return found


def on_call_in(schedules, at: datetime) -> dict[int, list[int]]:
    """{schedule id: sorted ids of the users on call at ``at``} for several schedules, in
    the three queries of load_specs, then the computation per schedule."""
    specs = load_specs(schedules, at, at + ONE_MICROSECOND)
    return {schedule_id: sorted({shift.user_id for shift in
                                 compute_shifts(spec, at, at + ONE_MICROSECOND)})
            for schedule_id, spec in specs.items()}


def on_call_now_everywhere(at: datetime | None = None) -> list[tuple]:
    """[(schedule, [user ids])] for every schedule at ``at`` (default now), by schedule
    name: the admin index panel and GET /api/v1/oncall/. Four queries in all (schedules,
    rotations, overrides, users), then the computation per schedule: fine for tens of
    schedules (docs/on-call.md#schedules)."""
    schedules = list(Schedule.objects.order_by("name"))
    on_call = on_call_in(schedules, at or timezone.now())
    return [(schedule, on_call[schedule.pk]) for schedule in schedules]


def replaced_person_is_on_call(schedule: Schedule, replaces_id: int, start: datetime,
                               end: datetime, *, leaving_out: int | None = None) -> bool:
    """Whether ``replaces_id`` is on call at some moment between start and end, with the
    schedule's other overrides applied (``leaving_out``: the override being edited). An
    override replacing someone who is not on call then would change nothing."""
    spec = schedule_spec(schedule, start, end)
    others = tuple(o for o in spec.overrides if o.override_id != leaving_out)
    found = compute_shifts(replace(spec, overrides=others), start, end)
    return any(shift.user_id == replaces_id for shift in found)
