"""Who is on call: rotations in local wall-clock time across both 2027 daylight-saving
changes in Europe/Berlin and America/New_York, restrictions passing midnight, layers,
overrides at shift edges, the fallback user, edits that keep past shifts, and the loaders'
query counts (docs/on-call.md#schedules)."""

from datetime import UTC, date, datetime, time, timedelta
from time import perf_counter
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from oncall import shifts as oncall_shifts
from oncall.models import Override, Rotation, Schedule
from oncall.rotation_history import history_entry, record_history
from oncall.shift_engine import (
    OverrideSpec,
    RotationSpec,
    ScheduleSpec,
    Shift,
    compute_shifts,
    local_to_instant,
    users_at,
    windows_from_restrictions,
)
from oncall.validation import (
    normalize_restrictions,
    parse_handoff,
    validate_participants,
    validate_shift_length,
    validate_time_zone,
)
from tests.conftest import make_user

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def local(zone, *parts) -> datetime:
    """An aware instant from a local wall-clock time (first occurrence when ambiguous)."""
    return datetime(*parts, tzinfo=zone)


def rotation(handoff, participants, kind="daily", length=1, layer=1, restrictions=()):
    return RotationSpec(layer=layer, shift_kind=kind, shift_length=length, handoff=handoff,
                        participants=tuple(participants),
                        windows=windows_from_restrictions(normalize_restrictions(
                            list(restrictions))))


def wall_clock(shifts, zone):
    """(user, local start, local end) as naive wall-clock times, to compare with a
    timetable a person would write."""
    return [(shift.user_id, shift.start.astimezone(zone).replace(tzinfo=None),
             shift.end.astimezone(zone).replace(tzinfo=None)) for shift in shifts]


# --- daylight-saving changes -------------------------------------------------------------

@pytest.mark.parametrize("zone, day", [
    (BERLIN, date(2027, 3, 28)), (BERLIN, date(2027, 10, 31)),
    (NEW_YORK, date(2027, 3, 14)), (NEW_YORK, date(2027, 11, 7)),
])
def test_daily_handoff_keeps_local_time_across_dst(zone, day):
    spec = ScheduleSpec(zone.key, rotations=(
        rotation(datetime(2027, 1, 4, 9), [1, 2, 3]),))
    start = local(zone, day.year, day.month, day.day) - timedelta(days=2)
    found = compute_shifts(spec, start, start + timedelta(days=5))
    inner = wall_clock(found, zone)[1:-1]
    assert [(begin.time(), end.time()) for _, begin, end in inner] == [(time(9), time(9))] * 4
    lengths = {shift.end - shift.start for shift in found[1:-1]}
    # The day of the change is 23 or 25 hours long; the others 24.
    assert timedelta(hours=24) in lengths
    assert len(lengths) == 2 and lengths - {timedelta(hours=24)} <= {
        timedelta(hours=23), timedelta(hours=25)}
    # Participants keep turning one a day: 2027-01-04 was user 1's.
    first_index = (inner[0][1].date() - date(2027, 1, 4)).days
    assert [user for user, _, _ in inner] == [
        [1, 2, 3][(first_index + step) % 3] for step in range(4)]


def test_hourly_rotation_loses_the_hour_that_does_not_exist_in_berlin():
    spec = ScheduleSpec("Europe/Berlin", rotations=(
        rotation(datetime(2027, 3, 28, 0), [1, 2, 3], kind="hourly"),))
    found = compute_shifts(spec, local(BERLIN, 2027, 3, 28, 0), local(BERLIN, 2027, 3, 28, 5))
    # 02:00 does not exist: user 3's shift 02:00–03:00 has no length and vanishes; the
    # turns stay tied to the wall clock, so 03:00 is user 1's as on every other day.
    assert wall_clock(found, BERLIN) == [
        (1, datetime(2027, 3, 28, 0), datetime(2027, 3, 28, 1)),
        (2, datetime(2027, 3, 28, 1), datetime(2027, 3, 28, 3)),
        (1, datetime(2027, 3, 28, 3), datetime(2027, 3, 28, 4)),
        (2, datetime(2027, 3, 28, 4), datetime(2027, 3, 28, 5)),
    ]
    assert [shift.end - shift.start for shift in found] == [timedelta(hours=1)] * 4


def test_hourly_rotation_through_the_repeated_hour_in_new_york():
    spec = ScheduleSpec("America/New_York", rotations=(
        rotation(datetime(2027, 11, 7, 0), [1, 2, 3], kind="hourly"),))
    found = compute_shifts(spec, datetime(2027, 11, 7, 4, tzinfo=UTC),
                           datetime(2027, 11, 7, 9, tzinfo=UTC))
    # 01:00–02:00 happens twice (EDT, then EST): the 01:00 shift lasts both, two hours.
    assert [(shift.user_id, shift.start, shift.end) for shift in found] == [
        (1, datetime(2027, 11, 7, 4, tzinfo=UTC), datetime(2027, 11, 7, 5, tzinfo=UTC)),
        (2, datetime(2027, 11, 7, 5, tzinfo=UTC), datetime(2027, 11, 7, 7, tzinfo=UTC)),
        (3, datetime(2027, 11, 7, 7, tzinfo=UTC), datetime(2027, 11, 7, 8, tzinfo=UTC)),
        (1, datetime(2027, 11, 7, 8, tzinfo=UTC), datetime(2027, 11, 7, 9, tzinfo=UTC)),
    ]


def test_a_local_time_in_the_gap_moves_forward_to_the_transition_not_an_hour_past_it():
    assert local_to_instant(datetime(2027, 3, 28, 2, 30), BERLIN) == \
        datetime(2027, 3, 28, 1, 0, tzinfo=UTC)  # 03:00 CEST
    assert local_to_instant(datetime(2027, 3, 14, 2, 30), NEW_YORK) == \
        datetime(2027, 3, 14, 7, 0, tzinfo=UTC)  # 03:00 EDT


def test_an_ambiguous_local_time_takes_its_first_occurrence():
    assert local_to_instant(datetime(2027, 10, 31, 2, 30), BERLIN) == \
        datetime(2027, 10, 31, 0, 30, tzinfo=UTC)  # 02:30 CEST, not CET
    assert local_to_instant(datetime(2027, 11, 7, 1, 30), NEW_YORK) == \
        datetime(2027, 11, 7, 5, 30, tzinfo=UTC)  # 01:30 EDT


def test_a_0230_handoff_on_the_spring_forward_day_starts_at_0300():
    spec = ScheduleSpec("Europe/Berlin", rotations=(
        rotation(datetime(2027, 3, 28, 2, 30), [1, 2]),))
    found = compute_shifts(spec, local(BERLIN, 2027, 3, 27), local(BERLIN, 2027, 3, 31))
    assert wall_clock(found, BERLIN) == [
        (1, datetime(2027, 3, 28, 3, 0), datetime(2027, 3, 29, 2, 30)),
        (2, datetime(2027, 3, 29, 2, 30), datetime(2027, 3, 30, 2, 30)),
        (1, datetime(2027, 3, 30, 2, 30), datetime(2027, 3, 31, 0, 0)),
    ]


def test_a_daily_0230_rotation_hands_off_at_the_transition_on_the_spring_forward_day():
    spec = ScheduleSpec("Europe/Berlin", rotations=(
        rotation(datetime(2027, 3, 1, 2, 30), [1, 2]),))
    found = compute_shifts(spec, local(BERLIN, 2027, 3, 27, 12), local(BERLIN, 2027, 3, 29, 12))
    assert wall_clock(found, BERLIN) == [
        (1, datetime(2027, 3, 27, 12), datetime(2027, 3, 28, 3, 0)),
        (2, datetime(2027, 3, 28, 3, 0), datetime(2027, 3, 29, 2, 30)),
        (1, datetime(2027, 3, 29, 2, 30), datetime(2027, 3, 29, 12)),
    ]


def test_before_its_handoff_a_rotation_is_inactive_and_the_fallback_is_on_call():
    spec = ScheduleSpec("UTC", fallback_user_id=9, rotations=(
        rotation(datetime(2027, 5, 1, 9), [1]),))
    found = compute_shifts(spec, datetime(2027, 5, 1, tzinfo=UTC),
                           datetime(2027, 5, 2, tzinfo=UTC))
    assert [(shift.user_id, shift.start.hour) for shift in found] == [(9, 0), (1, 9)]


def test_a_rotation_started_long_ago_is_found_by_arithmetic():
    spec = ScheduleSpec("Europe/Berlin", rotations=(
        rotation(datetime(2001, 1, 1, 0, 0), [1, 2, 3, 4, 5, 6, 7], kind="hourly"),))
    # Shifts count local wall-clock hours (the spring hour that does not exist is a
    # shift of no length), so the index is the wall-clock distance from the handoff.
    hours = (datetime(2027, 7, 1, 12) - datetime(2001, 1, 1)) // timedelta(hours=1)
    assert users_at(spec, local(BERLIN, 2027, 7, 1, 12)) == [[1, 2, 3, 4, 5, 6, 7][hours % 7]]


# --- restrictions ------------------------------------------------------------------------

def test_weekly_rotation_restricted_to_the_weekend_from_friday_night_to_monday_morning():
    weekend = [{"weekdays": [4], "start": "22:00", "end": "00:00"},
               {"weekdays": [5, 6], "start": "00:00", "end": "00:00"},
               {"weekdays": [0], "start": "00:00", "end": "06:00"}]
    spec = ScheduleSpec("America/New_York", rotations=(
        rotation(datetime(2027, 10, 25, 9), [1, 2], kind="weekly", restrictions=weekend),))
    found = compute_shifts(spec, local(NEW_YORK, 2027, 11, 1), local(NEW_YORK, 2027, 11, 15))
    # One piece per weekend, merged across the windows, and the weekly handoff (Monday
    # 09:00) is outside them; the first weekend holds the fall-back night (an hour longer).
    assert wall_clock(found, NEW_YORK) == [
        (1, datetime(2027, 11, 1, 0), datetime(2027, 11, 1, 6)),
        (2, datetime(2027, 11, 5, 22), datetime(2027, 11, 8, 6)),
        (1, datetime(2027, 11, 12, 22), datetime(2027, 11, 15, 0)),
    ]
    assert found[1].end - found[1].start == timedelta(hours=57)


def test_weekday_nights_restriction_passes_midnight_and_stops_at_the_handoff():
    nights = [{"weekdays": [0, 1, 2, 3, 4], "start": "18:00", "end": "08:00"}]
    spec = ScheduleSpec("Europe/Berlin", fallback_user_id=9, rotations=(
        rotation(datetime(2027, 3, 1, 0), [1, 2], kind="daily", restrictions=nights),))
    # Friday 2027-03-26 12:00 to Monday 2027-03-29 12:00, across the spring-forward night.
    found = compute_shifts(spec, local(BERLIN, 2027, 3, 26, 12), local(BERLIN, 2027, 3, 29, 12))
    assert wall_clock(found, BERLIN) == [
        (9, datetime(2027, 3, 26, 12), datetime(2027, 3, 26, 18)),
        # The daily handoff at midnight splits Friday night between the two.
        (2, datetime(2027, 3, 26, 18), datetime(2027, 3, 27, 0)),
        (1, datetime(2027, 3, 27, 0), datetime(2027, 3, 27, 8)),
        # No window on Saturday or Sunday; Monday's opens at 18:00.
        (9, datetime(2027, 3, 27, 8), datetime(2027, 3, 29, 12)),
    ]


def test_a_window_whose_start_equals_its_end_lasts_the_whole_day():
    spec = ScheduleSpec("UTC", rotations=(
        rotation(datetime(2027, 1, 4, 0), [1], kind="weekly",
                 restrictions=[{"weekdays": [2], "start": "07:00", "end": "07:00"}]),))
    found = compute_shifts(spec, datetime(2027, 1, 4, tzinfo=UTC),
                           datetime(2027, 1, 11, tzinfo=UTC))
    assert [(shift.start, shift.end) for shift in found] == [
        (datetime(2027, 1, 6, 7, tzinfo=UTC), datetime(2027, 1, 7, 7, tzinfo=UTC))]


# --- layers, overrides, fallback ----------------------------------------------------------

def two_layers(**overrides):
    """Layer 1: users 1/2 daily at 09:00 UTC; layer 2: user 5 weekdays 09:00–17:00."""
    office = [{"weekdays": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:00"}]
    return ScheduleSpec("UTC", fallback_user_id=overrides.pop("fallback", None), rotations=(
        rotation(datetime(2027, 1, 4, 9), [1, 2]),
        rotation(datetime(2027, 1, 4, 9), [5], layer=2, restrictions=office),
    ), overrides=tuple(overrides.pop("list", ())))


def utc(*parts):
    return datetime(*parts, tzinfo=UTC)


def test_the_highest_layer_with_someone_on_call_wins():
    found = compute_shifts(two_layers(), utc(2027, 1, 4, 9), utc(2027, 1, 5, 9))
    assert [(shift.user_id, shift.start.hour, shift.end.hour) for shift in found] == [
        (5, 9, 17), (1, 17, 9)]


def test_rotations_on_one_layer_add_up():
    spec = ScheduleSpec("UTC", rotations=(
        rotation(datetime(2027, 1, 4, 9), [1, 2]),
        rotation(datetime(2027, 1, 4, 9), [3, 4])))
    assert users_at(spec, utc(2027, 1, 5, 12)) == [2, 4]


def test_an_override_starting_exactly_at_a_handoff_and_ending_exactly_at_one():
    spec = two_layers(list=[OverrideSpec(utc(2027, 1, 9, 9), utc(2027, 1, 10, 9), 7, None, 1)])
    found = compute_shifts(spec, utc(2027, 1, 8, 9), utc(2027, 1, 11, 9))
    # Friday: user 5 in office hours, then user 1 (the daily handoff is at 09:00).
    assert found == [
        Shift(5, utc(2027, 1, 8, 9), utc(2027, 1, 8, 17)),
        Shift(1, utc(2027, 1, 8, 17), utc(2027, 1, 9, 9)),
        Shift(7, utc(2027, 1, 9, 9), utc(2027, 1, 10, 9), 1),
        Shift(1, utc(2027, 1, 10, 9), utc(2027, 1, 11, 9)),
    ]


def test_an_override_spanning_two_shifts_replaces_each_of_them():
    spec = ScheduleSpec("UTC", rotations=(rotation(datetime(2027, 1, 2, 9), [1, 2]),),
                        overrides=(OverrideSpec(utc(2027, 1, 9, 12), utc(2027, 1, 10, 12), 7),))
    found = compute_shifts(spec, utc(2027, 1, 9, 9), utc(2027, 1, 10, 18))
    assert [(shift.user_id, shift.start, shift.end) for shift in found] == [
        (2, utc(2027, 1, 9, 9), utc(2027, 1, 9, 12)),
        (7, utc(2027, 1, 9, 12), utc(2027, 1, 10, 12)),
        (1, utc(2027, 1, 10, 12), utc(2027, 1, 10, 18)),
    ]


def test_replacing_one_user_keeps_the_others_and_replacing_everyone_does_not():
    base = (rotation(datetime(2027, 1, 4, 9), [1]), rotation(datetime(2027, 1, 4, 9), [3]))
    swap = ScheduleSpec("UTC", rotations=base,
                        overrides=(OverrideSpec(utc(2027, 1, 5), utc(2027, 1, 6), 7, 1, 1),))
    takeover = ScheduleSpec("UTC", rotations=base,
                            overrides=(OverrideSpec(utc(2027, 1, 5), utc(2027, 1, 6), 7, None, 1),))
    assert users_at(swap, utc(2027, 1, 5, 12)) == [3, 7]
    assert users_at(takeover, utc(2027, 1, 5, 12)) == [7]


def test_replacing_someone_who_is_not_on_call_changes_nothing():
    spec = two_layers(list=[OverrideSpec(utc(2027, 1, 5), utc(2027, 1, 6), 7, 2, 1)])
    # Tuesday 2027-01-05: user 1 until 09:00, user 5 in office hours, then user 2.
    found = compute_shifts(spec, utc(2027, 1, 5), utc(2027, 1, 6))
    assert [(shift.user_id, shift.start.hour) for shift in found] == [(1, 0), (5, 9), (7, 17)]


def test_a_later_override_applies_on_top_of_an_earlier_one():
    spec = two_layers(list=[OverrideSpec(utc(2027, 1, 5), utc(2027, 1, 6), 7, None, 1),
                            OverrideSpec(utc(2027, 1, 5, 6), utc(2027, 1, 5, 8), 8, 7, 2)])
    found = compute_shifts(spec, utc(2027, 1, 5), utc(2027, 1, 6))
    assert [(shift.user_id, shift.start.hour, shift.end.hour, shift.override_id)
            for shift in found] == [(7, 0, 6, 1), (8, 6, 8, 2), (7, 8, 0, 1)]


def test_of_two_swaps_for_one_user_the_later_wins_and_a_swap_can_be_handed_on():
    base = (rotation(datetime(2027, 1, 4, 9), [1]), rotation(datetime(2027, 1, 4, 9), [3]))
    spec = ScheduleSpec("UTC", rotations=base, overrides=(
        OverrideSpec(utc(2027, 1, 5), utc(2027, 1, 6), 7, 1, 1),      # 7 takes 1's place
        OverrideSpec(utc(2027, 1, 5, 6), utc(2027, 1, 5, 8), 8, 1, 2),  # later: 8 does
        OverrideSpec(utc(2027, 1, 5, 12), utc(2027, 1, 5, 13), 9, 7, 3),  # 7 hands on
    ))
    assert users_at(spec, utc(2027, 1, 5, 5)) == [3, 7]
    assert users_at(spec, utc(2027, 1, 5, 7)) == [3, 8]
    assert users_at(spec, utc(2027, 1, 5, 12, 30)) == [3, 9]
    assert users_at(spec, utc(2027, 1, 6, 1)) == [1, 3]


def test_an_override_without_replaces_covers_a_stretch_nobody_is_on_call():
    spec = ScheduleSpec("UTC", rotations=(
        rotation(datetime(2027, 1, 4, 9), [1], restrictions=[
            {"weekdays": [0], "start": "09:00", "end": "10:00"}]),),
        overrides=(OverrideSpec(utc(2027, 1, 5, 3), utc(2027, 1, 5, 4), 7),))
    assert users_at(spec, utc(2027, 1, 5, 3, 30)) == [7]
    assert users_at(spec, utc(2027, 1, 5, 4, 30)) == []


def test_the_fallback_user_fills_the_stretches_the_rotations_leave_and_can_be_replaced():
    spec = ScheduleSpec("UTC", fallback_user_id=9, rotations=(
        rotation(datetime(2027, 1, 4, 9), [1], restrictions=[
            {"weekdays": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:00"}]),),
        overrides=(OverrideSpec(utc(2027, 1, 5, 20), utc(2027, 1, 5, 22), 7, 9, 4),))
    found = compute_shifts(spec, utc(2027, 1, 5), utc(2027, 1, 6))
    assert [(shift.user_id, shift.start.hour, shift.end.hour) for shift in found] == [
        (9, 0, 9), (1, 9, 17), (9, 17, 20), (7, 20, 22), (9, 22, 0)]


def test_shifts_are_clipped_sorted_and_merged_for_one_user():
    spec = ScheduleSpec("UTC", rotations=(rotation(datetime(2027, 1, 4, 9), [1]),))
    assert compute_shifts(spec, utc(2027, 1, 5, 3), utc(2027, 1, 9, 3)) == [
        Shift(1, utc(2027, 1, 5, 3), utc(2027, 1, 9, 3))]


def test_naive_datetimes_are_refused():
    spec = ScheduleSpec("UTC")
    with pytest.raises(ValueError):
        compute_shifts(spec, datetime(2027, 1, 1), datetime(2027, 1, 2))


# --- loading schedules from the database ---------------------------------------------------

@pytest.fixture
def people(db):
    return [make_user(name, "Responder") for name in ("ann", "bob", "cid", "dee")]


def daily_schedule(team, people, *, zone="Europe/Berlin", handoff=date(2027, 1, 4), **fields):
    schedule = Schedule.objects.create(name="Primary", team=team, time_zone=zone, **fields)
    Rotation.objects.create(schedule=schedule, name="Days", shift_kind="daily",
                            handoff_date=handoff, handoff_time=time(9),
                            participants=[user.pk for user in people[:3]])
    return schedule


def test_schedule_shifts_load_a_schedule_in_three_queries(team, people):
    schedule = daily_schedule(team, people)
    Rotation.objects.create(schedule=schedule, name="Nights", layer=2, shift_kind="weekly",
                            handoff_date=date(2027, 1, 4), handoff_time=time(18),
                            participants=[people[3].pk],
                            restrictions=[{"weekdays": [0, 1, 2, 3, 4], "start": "18:00",
                                           "end": "08:00"}])
    Override.objects.create(schedule=schedule, user=people[3], replaces=people[0],
                            start=utc(2027, 1, 4, 12), end=utc(2027, 1, 4, 13))
    with CaptureQueriesContext(connection) as queries:
        found = oncall_shifts.schedule_shifts(schedule, utc(2027, 1, 4), utc(2027, 1, 11))
    assert len(queries) == 3
    ann, dee = people[0].pk, people[3].pk
    override = Override.objects.get()
    # Nothing before the first handoff (09:00 Berlin); the override swaps ann for an hour;
    # the night layer (18:00–08:00 Berlin) wins over the day layer.
    assert found[:4] == [
        Shift(ann, utc(2027, 1, 4, 8), utc(2027, 1, 4, 12)),
        Shift(dee, utc(2027, 1, 4, 12), utc(2027, 1, 4, 13), override.pk),
        Shift(ann, utc(2027, 1, 4, 13), utc(2027, 1, 4, 17)),
        Shift(dee, utc(2027, 1, 4, 17), utc(2027, 1, 5, 7)),
    ]


def test_on_call_at_agrees_with_the_shifts(team, people):
    schedule = daily_schedule(team, people, fallback_user=people[3])
    assert oncall_shifts.on_call_at(schedule, utc(2027, 1, 4, 7, 59)) == [people[3].pk]
    assert oncall_shifts.on_call_at(schedule, utc(2027, 1, 4, 8)) == [people[0].pk]
    assert oncall_shifts.on_call_at(schedule, utc(2027, 1, 5, 8)) == [people[1].pk]


def test_a_deleted_participant_leaves_their_turns_to_the_fallback(team, people):
    schedule = daily_schedule(team, people, fallback_user=people[3])
    people[1].delete()
    found = oncall_shifts.schedule_shifts(schedule, utc(2027, 1, 4, 8), utc(2027, 1, 7, 8))
    assert [shift.user_id for shift in found] == [people[0].pk, people[3].pk, people[2].pk]


def test_user_shifts_finds_participants_override_users_and_the_fallback(team, people):
    schedule = daily_schedule(team, people[:1], fallback_user=people[1])
    other = Schedule.objects.create(name="Secondary", team=team, time_zone="UTC")
    Override.objects.create(schedule=other, user=people[2],
                            start=utc(2027, 1, 4, 12), end=utc(2027, 1, 4, 13))
    Rotation.objects.filter(schedule=schedule).update(restrictions=[
        {"weekdays": [0], "start": "09:00", "end": "17:00"}])
    window = (utc(2027, 1, 4), utc(2027, 1, 5))
    assert [(item.name, shift.start.hour, shift.end.hour) for item, shift in
            oncall_shifts.user_shifts(people[0].pk, *window)] == [("Primary", 8, 16)]
    assert [(shift.start.hour, shift.end.hour) for _, shift in
            oncall_shifts.user_shifts(people[1].pk, *window)] == [(0, 8), (16, 0)]
    assert [(item.name, shift.override_id is not None) for item, shift in
            oncall_shifts.user_shifts(people[2].pk, *window)] == [("Secondary", True)]
    assert oncall_shifts.user_shifts(people[3].pk, *window) == []


def test_on_call_now_everywhere_costs_the_same_queries_for_any_number_of_schedules(
        team, people):
    daily_schedule(team, people)
    Schedule.objects.create(name="Empty", team=team, fallback_user=people[3])
    with CaptureQueriesContext(connection) as queries:
        found = oncall_shifts.on_call_now_everywhere(utc(2027, 1, 4, 10))
    assert len(queries) == 4
    assert [(schedule.name, users) for schedule, users in found] == [
        ("Empty", [people[3].pk]), ("Primary", [people[0].pk])]


# --- editing a rotation keeps the shifts that have started -----------------------------------

def test_editing_participants_mid_rotation_keeps_yesterday_and_today(team, people):
    now = timezone.now()
    # Handoffs at the local hour two hours ago, so a shift is in progress and has 22 h to go.
    started = (now.astimezone(BERLIN) - timedelta(hours=2)).replace(
        minute=0, second=0, microsecond=0, tzinfo=None)
    schedule = daily_schedule(team, people, handoff=started.date() - timedelta(days=3))
    days = Rotation.objects.get(schedule=schedule)
    days.handoff_time = started.time()
    days.history = []
    Rotation.objects.filter(pk=days.pk).update(handoff_time=started.time())
    window = (now - timedelta(days=2), now + timedelta(days=3))
    before = oncall_shifts.schedule_shifts(schedule, *window)

    ann, bob, cid, dee = (user.pk for user in people)
    days.refresh_from_db()
    days.participants = [dee, cid]
    days.save()

    days.refresh_from_db()
    assert len(days.history) == 1
    until = datetime.fromisoformat(days.history[0]["until"])
    today_ends = local_to_instant(started + timedelta(days=1), BERLIN)
    assert until == today_ends
    after = oncall_shifts.schedule_shifts(schedule, *window)
    assert [shift for shift in after if shift.end <= today_ends] == \
        [shift for shift in before if shift.end <= today_ends]
    # From the next handoff, the new list by the rotation's count of turns (day 4: index 4).
    upcoming = [shift for shift in after if shift.start >= today_ends]
    assert [shift.user_id for shift in upcoming][:2] == [[dee, cid][4 % 2], [dee, cid][5 % 2]]
    assert before[-1].user_id in (ann, bob, cid)


def test_renaming_a_rotation_records_no_history(team, people):
    schedule = daily_schedule(team, people, handoff=date(2020, 1, 1))
    days = Rotation.objects.get(schedule=schedule)
    days.name = "Day shift"
    days.save()
    days.refresh_from_db()
    assert days.history == []


def test_editing_a_rotation_that_has_not_started_records_nothing(team, people):
    schedule = daily_schedule(team, people, handoff=date.today() + timedelta(days=30))
    days = Rotation.objects.get(schedule=schedule)
    days.participants = [people[3].pk]
    days.save()
    days.refresh_from_db()
    assert days.history == []


def test_moving_a_future_handoff_into_the_past_does_not_fill_the_past(team, people):
    schedule = daily_schedule(team, people, handoff=date(2027, 2, 1), fallback_user=people[3])
    days = Rotation.objects.select_related("schedule").get(schedule=schedule)
    edited = Rotation.objects.get(pk=days.pk)
    edited.handoff_date = date(2027, 1, 1)
    record_history(edited, days, utc(2027, 1, 10, 12))
    Rotation.objects.filter(pk=days.pk).update(handoff_date=edited.handoff_date,
                                               history=edited.history)
    found = oncall_shifts.schedule_shifts(schedule, utc(2027, 1, 10), utc(2027, 1, 11, 12))
    # Before the edit nobody from the rotation was on call, so the fallback stays there;
    # from the edit on, the new handoff's turns (2027-01-10 is day 9: user index 0).
    assert [(shift.user_id, shift.start, shift.end) for shift in found] == [
        (people[3].pk, utc(2027, 1, 10), utc(2027, 1, 10, 12)),
        (people[0].pk, utc(2027, 1, 10, 12), utc(2027, 1, 11, 8)),
        (people[1].pk, utc(2027, 1, 11, 8), utc(2027, 1, 11, 12)),
    ]


def test_a_rotation_without_participants_changes_at_once(team, people):
    schedule = daily_schedule(team, people, handoff=date(2027, 1, 4))
    Rotation.objects.filter(schedule=schedule).update(participants=[])
    days = Rotation.objects.select_related("schedule").get(schedule=schedule)
    edited = Rotation.objects.get(pk=days.pk)
    edited.participants = [people[0].pk]
    record_history(edited, days, utc(2027, 1, 10, 12))
    assert [entry["until"] for entry in edited.history] == ["2027-01-10T12:00:00+00:00"]


def test_two_edits_in_one_shift_keep_one_definition_in_history(team, people):
    schedule = daily_schedule(team, people, handoff=date(2027, 1, 4))
    days = Rotation.objects.select_related("schedule").get(schedule=schedule)
    now = utc(2027, 1, 10, 12)
    edited = Rotation.objects.get(pk=days.pk)
    edited.participants = [people[3].pk]
    record_history(edited, days, now)
    assert [entry["until"] for entry in edited.history] == ["2027-01-11T08:00:00+00:00"]
    Rotation.objects.filter(pk=days.pk).update(participants=edited.participants,
                                               history=edited.history)
    stored = Rotation.objects.select_related("schedule").get(pk=days.pk)
    # The first edit has not taken over yet, so a second one in the same shift adds nothing.
    assert history_entry(stored, now + timedelta(hours=1)) is None
    again = Rotation.objects.get(pk=days.pk)
    again.participants = [people[2].pk]
    record_history(again, stored, now + timedelta(hours=1))
    assert again.history == edited.history


def test_a_layer_change_takes_effect_at_the_next_handoff(team, people):
    schedule = daily_schedule(team, people, handoff=date(2027, 1, 4), fallback_user=people[3])
    days = Rotation.objects.select_related("schedule").get(schedule=schedule)
    edited = Rotation.objects.get(pk=days.pk)
    edited.restrictions = [{"weekdays": [0], "start": "09:00", "end": "10:00"}]
    record_history(edited, days, utc(2027, 1, 6, 12))
    Rotation.objects.filter(pk=days.pk).update(restrictions=edited.restrictions,
                                               history=edited.history)
    found = oncall_shifts.schedule_shifts(schedule, utc(2027, 1, 6), utc(2027, 1, 8))
    assert [(shift.user_id, shift.start, shift.end) for shift in found] == [
        (people[1].pk, utc(2027, 1, 6), utc(2027, 1, 6, 8)),
        (people[2].pk, utc(2027, 1, 6, 8), utc(2027, 1, 7, 8)),
        (people[3].pk, utc(2027, 1, 7, 8), utc(2027, 1, 8)),
    ]


# --- validation -----------------------------------------------------------------------------

def test_time_zones_are_iana_names():
    assert validate_time_zone("America/New_York") == "America/New_York"
    for bad in ("CEST", "Europe/Berlinn", "", None, "../../etc/passwd"):
        with pytest.raises(ValidationError, match="IANA"):
            validate_time_zone(bad)


def test_restrictions_are_normalized():
    assert normalize_restrictions([{"weekdays": [4, 0], "start": "8:00", "end": "17:30"}]) == [
        {"weekdays": [0, 4], "start": "08:00", "end": "17:30"}]
    assert normalize_restrictions(None) == []


@pytest.mark.parametrize("value, message", [
    ({"weekdays": [0]}, "must be a list"),
    (["x"], "Restriction 1: must be an object"),
    ([{"weekdays": [], "start": "09:00", "end": "10:00"}], "non-empty"),
    ([{"weekdays": [7], "start": "09:00", "end": "10:00"}], "weekday 7"),
    ([{"weekdays": [True], "start": "09:00", "end": "10:00"}], "weekday True"),
    ([{"weekdays": [1, 1], "start": "09:00", "end": "10:00"}], "twice"),
    ([{"weekdays": [1], "start": "24:00", "end": "10:00"}], "start must be"),
    ([{"weekdays": [1], "start": "09:00", "end": "10:60"}], "end must be"),
    ([{"weekdays": [1], "start": "09:00", "end": "10:00"},
      {"weekdays": [1], "start": "09:00"}], "Restriction 2: end"),
    ([{"weekdays": [1], "start": "09:00", "end": "10:00", "tz": "UTC"}], "unknown key"),
])
def test_bad_restrictions_name_the_entry_at_fault(value, message):
    with pytest.raises(ValidationError, match=message):
        normalize_restrictions(value)


def test_handoff_is_a_wall_clock_time_without_offset():
    assert parse_handoff("2027-03-28T02:30") == datetime(2027, 3, 28, 2, 30)
    with pytest.raises(ValidationError, match="without an offset"):
        parse_handoff("2027-03-28T02:30+01:00")
    with pytest.raises(ValidationError, match="local date and time"):
        parse_handoff("next monday")
    with pytest.raises(ValidationError, match="between 1970 and 2199"):
        parse_handoff("0001-01-01T00:00")


def test_shift_lengths_are_whole_units_up_to_a_year():
    assert validate_shift_length("weekly", 2) == 2
    for kind, length, message in (("weekly", 54, "1 to 53"), ("daily", 0, "1 to 366"),
                                  ("hourly", True, "whole number"), ("monthly", 1, "one of")):
        with pytest.raises(ValidationError, match=message):
            validate_shift_length(kind, length)


def test_ranges_far_in_the_past_or_future_do_not_overflow():
    spec = ScheduleSpec("Pacific/Kiritimati", fallback_user_id=9, rotations=(
        rotation(datetime(2199, 12, 31, 23), [1], kind="weekly", length=53),))
    found = compute_shifts(spec, datetime.min.replace(tzinfo=UTC),
                           datetime.max.replace(tzinfo=UTC))
    assert [shift.user_id for shift in found] == [9, 1]
    assert found[-1].end == datetime(9000, 1, 1, tzinfo=UTC)


def test_a_shift_length_validation_would_refuse_still_computes():
    spec = ScheduleSpec("Europe/Berlin", rotations=(
        rotation(datetime(2027, 1, 4, 9), [1, 2], kind="weekly", length=2**31 - 1),))
    found = compute_shifts(spec, utc(2027, 1, 1), utc(2028, 1, 1))
    assert [(shift.user_id, shift.start, shift.end) for shift in found] == [
        (1, utc(2027, 1, 4, 8), utc(2028, 1, 1))]
    for year in (1, 9999):
        spec = ScheduleSpec("Pacific/Kiritimati", fallback_user_id=9, rotations=(
            rotation(datetime(year, 1, 1, 0), [1]),))
        assert {shift.user_id for shift in compute_shifts(spec, utc(2027, 1, 1),
                                                          utc(2027, 1, 2))} == {
            1 if year == 1 else 9}


def test_participants_are_existing_user_ids(people):
    ids = [people[1].pk, people[0].pk, people[1].pk]
    assert validate_participants(ids) == ids
    missing = max(User.objects.values_list("pk", flat=True)) + 1
    for bad, message in (([], "non-empty"), (["1"], "not a user id"),
                         ([missing], f"no user {missing}")):
        with pytest.raises(ValidationError, match=message):
            validate_participants(bad)


def test_a_year_of_a_three_layer_schedule_takes_well_under_a_second():
    # benchmarks/oncall.py measures this in detail (about 20 ms on the 2-core CI machine).
    weekend = [{"weekdays": [5, 6], "start": "08:00", "end": "20:00"}]
    nights = [{"weekdays": [0, 1, 2, 3, 4], "start": "18:00", "end": "08:00"}]
    overrides = tuple(
        OverrideSpec(utc(2027, 1, 3) + timedelta(days=7 * index, hours=index % 24),
                     utc(2027, 1, 3) + timedelta(days=7 * index, hours=index % 24 + 9),
                     20, None if index % 2 else 1 + index % 6, index)
        for index in range(48))
    spec = ScheduleSpec("Europe/Berlin", fallback_user_id=19, rotations=(
        rotation(datetime(2020, 1, 4, 8), range(1, 7), kind="hourly", length=4, layer=3,
                 restrictions=weekend),
        rotation(datetime(2020, 1, 6, 18), range(7, 11), layer=2, restrictions=nights),
        rotation(datetime(2020, 1, 6, 9), range(11, 16), kind="weekly"),
    ), overrides=overrides)
    started = perf_counter()
    found = compute_shifts(spec, utc(2027, 1, 1), utc(2028, 1, 1))
    assert perf_counter() - started < 1.0
    assert len(found) > 500 and {shift.user_id for shift in found} >= {1, 7, 11, 20}


def test_history_compares_a_definition_a_form_filled_with_strings(team, people):
    schedule = daily_schedule(team, people, handoff=date(2027, 1, 4))
    days = Rotation.objects.select_related("schedule").get(schedule=schedule)
    edited = Rotation.objects.get(pk=days.pk)
    edited.handoff_date, edited.handoff_time, edited.shift_length = "2027-01-04", "09:00", "1"
    record_history(edited, days, utc(2027, 1, 10, 12))
    assert edited.history == []


@pytest.mark.parametrize("name", ["Factory", "localtime"])
def test_zones_that_are_not_places_are_refused(name):
    with pytest.raises(ValidationError):
        validate_time_zone(name)
