"""Properties of the on-call engine, checked on random schedules (Hypothesis), without the
database: random zones (including Australia/Lord_Howe's half-hour daylight saving),
rotations, restrictions, layers and overrides, over ranges around the 2027 changes.

- "who is on call at T" is exactly the set of users whose shifts contain T;
- the shifts of a sub-range are the shifts of a wider range clipped to it;
- an override without ``replaces`` leaves no instant of its interval without anyone;
- daily shifts start and end at the handoff's wall-clock time, whatever the offset does,
  unless that time does not exist on the day;
- editing a rotation, any number of times, never changes a shift that had started.

The number of examples is bounded by TOCSIN_FUZZ_EXAMPLES (default 40), as in
tests/test_fuzz.py; raise it locally to search harder.
"""

import os
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oncall.models import Rotation, Schedule
from oncall.rotation_history import record_history
from oncall.shift_engine import (
    OverrideSpec,
    RotationSpec,
    ScheduleSpec,
    compute_shifts,
    local_to_instant,
    shift_in_progress,
    users_at,
    windows_from_restrictions,
)
from oncall.shifts import rotation_specs

EXAMPLES = int(os.environ.get("TOCSIN_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ZONES = ["Europe/Berlin", "America/New_York", "UTC", "Australia/Lord_Howe"]
# Days around the 2027 changes of those zones (Lord Howe: 2027-04-04 and 2027-10-03).
AROUND = [date(2027, 3, 14), date(2027, 3, 28), date(2027, 4, 4), date(2027, 10, 3),
          date(2027, 10, 31), date(2027, 11, 7), date(2027, 6, 15)]
USERS = st.integers(min_value=1, max_value=6)

clock = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
restriction = st.fixed_dictionaries({
    "weekdays": st.lists(st.integers(0, 6), min_size=1, max_size=7, unique=True),
    "start": clock.map(lambda value: value.strftime("%H:%M")),
    "end": clock.map(lambda value: value.strftime("%H:%M")),
})


@st.composite
def rotations(draw, kinds=("hourly", "daily", "weekly")):
    kind = draw(st.sampled_from(kinds))
    day = draw(st.sampled_from(AROUND)) + timedelta(days=draw(st.integers(-20, 3)))
    return RotationSpec(
        layer=draw(st.integers(1, 3)),
        shift_kind=kind,
        shift_length=draw(st.integers(1, 12 if kind == "hourly" else 3)),
        handoff=datetime.combine(day, draw(clock)),
        participants=tuple(draw(st.lists(USERS, min_size=1, max_size=4))),
        windows=windows_from_restrictions(draw(st.lists(restriction, max_size=2))),
    )


@st.composite
def schedules(draw):
    """(spec, range start, range end) over a few days around a daylight-saving change."""
    zone = draw(st.sampled_from(ZONES))
    start = datetime.combine(draw(st.sampled_from(AROUND)), time(), tzinfo=UTC) + timedelta(
        minutes=15 * draw(st.integers(-4 * 24 * 3, 4 * 24)))
    end = start + timedelta(minutes=15 * draw(st.integers(1, 4 * 24 * 6)))
    overrides = []
    for order in range(draw(st.integers(0, 4))):
        begin = start + timedelta(minutes=15 * draw(st.integers(-8, 4 * 24 * 6)))
        overrides.append(OverrideSpec(
            start=begin, end=begin + timedelta(minutes=15 * draw(st.integers(1, 4 * 30))),
            user_id=draw(st.integers(1, 8)),
            replaces_id=draw(st.none() | USERS), override_id=100 + order))
    spec = ScheduleSpec(
        time_zone=zone,
        fallback_user_id=draw(st.none() | st.just(9)),
        rotations=tuple(draw(st.lists(rotations(), max_size=3))),
        overrides=tuple(overrides),
    )
    return spec, start, end


def on_call_by_shifts(shifts, at) -> list[int]:
    return sorted({shift.user_id for shift in shifts if shift.start <= at < shift.end})


@FUZZ
@given(schedules(), st.lists(st.floats(0, 1, exclude_max=True), max_size=8))
def test_who_is_on_call_at_an_instant_is_what_the_shifts_say(case, fractions):
    spec, start, end = case
    shifts = compute_shifts(spec, start, end)
    instants = {start + (end - start) * fraction for fraction in fractions}
    # Every quarter hour (7.5 minutes past it), so the repeated hour of a fall-back night
    # is always looked at.
    quarter = timedelta(minutes=15)
    instants |= {start + quarter * step + quarter / 2
                 for step in range((end - start) // quarter)}
    # Every boundary, and the microsecond before it, is where a disagreement would hide.
    for shift in shifts:
        instants |= {shift.start, shift.end - timedelta(microseconds=1)}
    for at in sorted(instants):
        if start <= at < end:
            assert users_at(spec, at) == on_call_by_shifts(shifts, at), at


@FUZZ
@given(schedules())
def test_shifts_are_clipped_sorted_and_merged(case):
    spec, start, end = case
    shifts = compute_shifts(spec, start, end)
    assert shifts == sorted(shifts, key=lambda shift: (shift.start, shift.user_id, shift.end))
    last_end = {}
    for shift in shifts:
        assert start <= shift.start < shift.end <= end
        key = (shift.user_id, shift.override_id)
        # One user's intervals from the same source neither overlap nor touch.
        assert last_end.get(key, start - timedelta(days=1)) < shift.start
        last_end[key] = shift.end


@FUZZ
@given(schedules(), st.floats(0, 1), st.floats(0, 1))
def test_the_shifts_of_a_sub_range_are_the_wider_ones_clipped(case, left, right):
    spec, start, end = case
    low, high = sorted([start + (end - start) * left, start + (end - start) * right])
    if low == high:
        return
    clipped = []
    for shift in compute_shifts(spec, start, end):
        begin, finish = max(shift.start, low), min(shift.end, high)
        if begin < finish:
            clipped.append((shift.user_id, begin, finish, shift.override_id))
    narrow = compute_shifts(spec, low, high)
    assert sorted(clipped) == sorted(
        (shift.user_id, shift.start, shift.end, shift.override_id) for shift in narrow)


@FUZZ
@given(schedules())
def test_an_override_without_replaces_leaves_no_gap(case):
    spec, start, end = case
    shifts = compute_shifts(spec, start, end)
    for override in spec.overrides:
        if override.replaces_id is not None:
            continue
        cursor, finish = max(override.start, start), min(override.end, end)
        for shift in sorted(shifts, key=lambda shift: shift.start):
            if shift.start <= cursor < shift.end:
                cursor = shift.end
        assert cursor >= finish, (override, cursor)


@FUZZ
@given(st.sampled_from(ZONES), st.sampled_from(AROUND), st.integers(-10, 0), clock,
       st.integers(1, 3))
def test_daily_shifts_keep_the_handoff_wall_clock_time_across_dst(name, around, days, hour,
                                                                   length):
    zone = ZoneInfo(name)
    handoff = datetime.combine(around + timedelta(days=days), hour)
    spec = ScheduleSpec(name, rotations=(RotationSpec(
        layer=1, shift_kind="daily", shift_length=length, handoff=handoff,
        participants=(1, 2)),))
    start = local_to_instant(handoff, zone)
    shifts = compute_shifts(spec, start, start + timedelta(days=length * 8))
    assert shifts
    for shift in shifts[:-1]:
        local_start = shift.start.astimezone(zone).replace(tzinfo=None)
        local_end = shift.end.astimezone(zone).replace(tzinfo=None)
        day = local_start.date()
        if exists(day, hour, zone) and exists(local_end.date(), hour, zone):
            assert local_start.time() == local_end.time() == hour
            assert local_end.date() - day == timedelta(days=length)
        else:
            # The handoff time does not exist that day: the shift starts or ends at the
            # transition, the first valid instant after it.
            assert shift.start == local_to_instant(datetime.combine(day, hour), zone)
            assert shift.end == local_to_instant(
                datetime.combine(day + timedelta(days=length), hour), zone)
        # In real time, a shift is its days give or take the one change it may cross.
        assert abs(shift.end - shift.start - timedelta(days=length)) <= timedelta(hours=1)


def exists(day: date, hour: time, zone: ZoneInfo) -> bool:
    local = datetime.combine(day, hour)
    return local_to_instant(local, zone).astimezone(zone).replace(tzinfo=None) == local


restrictions_json = st.lists(restriction, max_size=2).map(
    lambda entries: [{**entry, "weekdays": sorted(entry["weekdays"])} for entry in entries])


@st.composite
def rotation_rows(draw, schedule):
    """An unsaved Rotation (no database needed: the history is computed in memory)."""
    kind = draw(st.sampled_from(["hourly", "daily", "weekly"]))
    day = draw(st.sampled_from(AROUND)) + timedelta(days=draw(st.integers(-20, 3)))
    return Rotation(
        schedule=schedule, name="r", layer=1, shift_kind=kind,
        shift_length=draw(st.integers(1, 12 if kind == "hourly" else 3)),
        handoff_date=day, handoff_time=draw(clock),
        participants=draw(st.lists(USERS, max_size=4)),
        restrictions=draw(restrictions_json))


@st.composite
def edited_rotations(draw):
    schedule = Schedule(name="s", time_zone=draw(st.sampled_from(ZONES)))
    first = draw(rotation_rows(schedule))
    edits = []
    moment = datetime.combine(AROUND[0], time(), tzinfo=UTC)
    for _ in range(draw(st.integers(1, 3))):
        moment += timedelta(minutes=15 * draw(st.integers(1, 4 * 24 * 30)))
        edits.append((moment, draw(rotation_rows(schedule))))
    return schedule, first, edits


@FUZZ
@given(edited_rotations())
def test_editing_a_rotation_never_changes_a_shift_that_had_started(case):
    schedule, current, edits = case
    start = datetime.combine(AROUND[0] - timedelta(days=40), time(), tzinfo=UTC)
    for now, replacement in edits:
        record_history(replacement, current, now)
        zone = ZoneInfo(schedule.time_zone)
        in_force = rotation_specs(current)[-1]
        started = in_force.valid_from or local_to_instant(in_force.handoff, zone)
        shift = shift_in_progress(in_force, zone, now) if started <= now else None
        # Kept: the past, and the rest of the shift in progress.
        kept_until = shift[1] if shift else now
        assert timeline(schedule, current, start, kept_until) == \
            timeline(schedule, replacement, start, kept_until)
        current = replacement


def timeline(schedule, row, start, end):
    spec = ScheduleSpec(schedule.time_zone, rotations=tuple(rotation_specs(row)))
    return compute_shifts(spec, start, end)
