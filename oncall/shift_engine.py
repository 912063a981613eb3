"""The pure core of who is on call (docs/on-call.md#schedules): plain data in, shifts out,
no database. oncall/shifts.py loads a schedule into a ScheduleSpec and calls it.

Every instant inside is an aware datetime in UTC. Local wall-clock times (handoffs,
restriction windows) are naive datetimes in the schedule's zone, turned into instants by
``local_to_instant``: a local time that does not exist (the spring-forward gap) moves
forward to the first valid instant, the transition itself; an ambiguous one (fall back)
takes its first occurrence.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

SHIFT_UNITS = {
    "hourly": timedelta(hours=1),
    "daily": timedelta(days=1),
    "weekly": timedelta(weeks=1),
}
ONE_MICROSECOND = timedelta(microseconds=1)
# The engine answers for instants in this span (a requested range is clipped to it), so
# local arithmetic near datetime's limits never overflows. Handoffs are validated to lie
# well inside it (oncall/validation.py).
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Shift:
    """A final on-call interval of one user (aware datetimes, UTC)."""

    user_id: int
    start: datetime
    end: datetime
    # The override that put the user on call, if one did.
    override_id: int | None = None


@dataclass(frozen=True)
class Window:
    """A restriction window: from ``start`` on a ``weekday`` (Monday = 0) to ``end`` the
    same day, or the next day when ``end`` <= ``start`` (equal: the whole 24 hours)."""

    weekday: int
    start: time
    end: time


@dataclass(frozen=True)
class RotationSpec:
    layer: int
    shift_kind: str
    shift_length: int
    # The first shift's start, local wall-clock time (naive).
    handoff: datetime
    # User ids in order; None stands for a user that no longer exists (their shifts are
    # nobody's, so lower layers or the fallback apply, and the others keep their turns).
    participants: tuple
    windows: tuple = ()
    # This definition applies in [valid_from, valid_until) (None: unbounded); earlier
    # definitions of an edited rotation end where the next one begins.
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    rotation_id: int | None = None

    @property
    def unit(self) -> timedelta:
        try:
            return SHIFT_UNITS[self.shift_kind] * self.shift_length
        except OverflowError:
            # Validation refuses such lengths; a row stored without it still computes
            # (one shift that never ends) instead of failing every page that shows it.
            return timedelta.max


@dataclass(frozen=True)
class OverrideSpec:
    start: datetime
    end: datetime
    user_id: int
    replaces_id: int | None = None
    override_id: int | None = None


@dataclass(frozen=True)
class ScheduleSpec:
    time_zone: str
    fallback_user_id: int | None = None
    rotations: tuple = ()
    # In creation order: where overrides overlap, a later one applies on top of the
    # earlier ones.
    overrides: tuple = ()


def local_to_instant(local: datetime, zone: ZoneInfo) -> datetime:
    """The instant of a naive local wall-clock time in ``zone``."""
    instant = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == local:
        return instant  # valid; for an ambiguous time fold=0 is the first occurrence
    # In a gap fold=0 uses the offset from before the transition, which lands after it
    # (02:30 → 03:30 in Berlin); the contract wants the transition itself (03:00).
    return transition_before(instant, zone)


def transition_before(after: datetime, zone: ZoneInfo) -> datetime:
    """The instant the zone's UTC offset last changed at or before ``after`` (searched
    within the day before, by seconds: gaps are at most a few hours)."""
    offset_after = after.astimezone(zone).utcoffset()
    low, high = after - timedelta(days=1), after
    if low.astimezone(zone).utcoffset() == offset_after:
        return after  # no transition found: keep fold=0's answer rather than guess
    # Invariant: low has the earlier offset, high the later one.
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if middle <= low:
            middle = low + timedelta(seconds=1)
        if middle.astimezone(zone).utcoffset() == offset_after:
            high = middle
        else:
            low = middle
    return high


def instant_to_local(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def shift_index_at(rotation: RotationSpec, instant: datetime, zone: ZoneInfo) -> int:
    """The index of the shift containing ``instant`` (-1: before the handoff), found by
    arithmetic on local times, so a rotation started years ago costs what a new one does.
    The neighbouring starts are checked as a guard: since local times map to instants in
    order (a gap forward, a repeat to its first occurrence), the arithmetic is exact."""
    unit = rotation.unit
    index = (instant_to_local(instant, zone) - rotation.handoff) // unit
    index = max(index, -1)
    while index >= 0 and shift_start(rotation, index, zone) > instant:
        index -= 1
    while shift_start(rotation, index + 1, zone) <= instant:
        index += 1
    return index


def shift_start(rotation: RotationSpec, index: int, zone: ZoneInfo) -> datetime:
    try:
        instant = local_to_instant(rotation.handoff + index * rotation.unit, zone)
    except OverflowError:
        # Beyond datetime's range (only rows stored without validation get here).
        return LATEST if index > 0 or rotation.handoff.year > 5000 else EARLIEST
    return min(max(instant, EARLIEST), LATEST)


def shift_in_progress(rotation: RotationSpec, zone: ZoneInfo, at: datetime) -> tuple | None:
    """(start, end) of the rotation's shift in progress at ``at``, restrictions and
    validity aside; None before the handoff or without participants."""
    if not rotation.participants:
        return None
    index = shift_index_at(rotation, at, zone)
    if index < 0:
        return None
    return shift_start(rotation, index, zone), shift_start(rotation, index + 1, zone)


def rotation_shifts(rotation: RotationSpec, zone: ZoneInfo, start: datetime,
                    end: datetime) -> list[tuple]:
    """(start, end, user id) of the rotation's shifts inside [start, end), clipped to it
    and to the definition's validity, before restrictions. Zero-length shifts (a local
    hour that does not exist) vanish."""
    if not rotation.participants:
        return []
    low = start if rotation.valid_from is None else max(start, rotation.valid_from)
    high = end if rotation.valid_until is None else min(end, rotation.valid_until)
    if low >= high:
        return []
    index = max(shift_index_at(rotation, low, zone), 0)
    shift_begin = shift_start(rotation, index, zone)
    count = len(rotation.participants)
    found = []
    while shift_begin < high:
        shift_end = shift_start(rotation, index + 1, zone)
        user_id = rotation.participants[index % count]
        if shift_end > low and shift_end > shift_begin and user_id is not None:
            found.append((max(shift_begin, low), min(shift_end, high), user_id))
        index += 1
        shift_begin = shift_end
    return found


def window_intervals(windows, zone: ZoneInfo, start: datetime, end: datetime) -> list[tuple]:
    """The union of restriction windows inside [start, end), as sorted disjoint
    (start, end) instants."""
    first_day = instant_to_local(start, zone).date() - timedelta(days=1)
    last_day = instant_to_local(end, zone).date()
    by_weekday = defaultdict(list)
    for window in windows:
        by_weekday[window.weekday].append(window)
    spans = []
    day = first_day
    while day <= last_day:
        for window in by_weekday.get(day.weekday(), ()):
            window_end_day = day if window.end > window.start else day + timedelta(days=1)
            opens = local_to_instant(datetime.combine(day, window.start), zone)
            closes = local_to_instant(datetime.combine(window_end_day, window.end), zone)
            opens, closes = max(opens, start), min(closes, end)
            if opens < closes:
                spans.append((opens, closes))
        day += timedelta(days=1)
    spans.sort()
    merged = []
    for opens, closes in spans:
        if merged and opens <= merged[-1][1]:
            if closes > merged[-1][1]:
                merged[-1] = (merged[-1][0], closes)
        else:
            merged.append((opens, closes))
    return merged


def restrict(shifts: list[tuple], spans: list[tuple]) -> list[tuple]:
    """The parts of (start, end, user) shifts inside the (start, end) spans; both lists
    sorted and disjoint."""
    found = []
    span_index = 0
    for shift_begin, shift_end, user_id in shifts:
        while span_index < len(spans) and spans[span_index][1] <= shift_begin:
            span_index += 1
        probe = span_index
        while probe < len(spans) and spans[probe][0] < shift_end:
            begin = max(shift_begin, spans[probe][0])
            finish = min(shift_end, spans[probe][1])
            if begin < finish:
                found.append((begin, finish, user_id))
            probe += 1
    return found


def rotation_intervals(rotation: RotationSpec, zone: ZoneInfo, start: datetime,
                       end: datetime) -> list[tuple]:
    """(start, end, user id) when the rotation puts someone on call inside [start, end)."""
    shifts = rotation_shifts(rotation, zone, start, end)
    if not rotation.windows or not shifts:
        return shifts
    return restrict(shifts, window_intervals(rotation.windows, zone, start, end))


def compute_shifts(spec: ScheduleSpec, start: datetime, end: datetime) -> list[Shift]:
    """The final on-call intervals inside [start, end): the highest layer with anyone on
    call (rotations on one layer add up), or the fallback user when no layer has anyone,
    then the overrides in creation order. Sorted by (start, user id); touching intervals
    of one user merged unless an override made one of them (it stays its own interval,
    marked with the override)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be aware datetimes")
    start = min(max(start.astimezone(UTC), EARLIEST), LATEST)
    end = min(max(end.astimezone(UTC), EARLIEST), LATEST)
    if start >= end:
        return []
    zone = ZoneInfo(spec.time_zone)
    # Each boundary instant → the changes happening there.
    changes = defaultdict(list)
    # The range's ends are boundaries even where nothing changes (the fallback's stretch).
    changes.setdefault(start, [])
    changes.setdefault(end, [])
    for rotation in spec.rotations:
        for begin, finish, user_id in rotation_intervals(rotation, zone, start, end):
            changes[begin].append((rotation.layer, user_id, 1))
            changes[finish].append((rotation.layer, user_id, -1))
    overrides = []
    for order, override in enumerate(spec.overrides):
        begin, finish = max(override.start, start), min(override.end, end)
        if begin < finish:
            changes[begin].append((None, order, 1))
            changes[finish].append((None, order, -1))
            overrides.append(override)
        else:
            overrides.append(None)

    counts = defaultdict(lambda: defaultdict(int))  # layer → user id → how many
    active_overrides = set()
    open_since = {}  # (user id, override id) → start of its open interval
    found = []
    instants = sorted(changes)
    for position, instant in enumerate(instants):
        for layer, key, delta in changes[instant]:
            if layer is None:
                if delta > 0:
                    active_overrides.add(key)
                else:
                    active_overrides.discard(key)
                continue
            users = counts[layer]
            users[key] += delta
            if not users[key]:
                del users[key]
        on_call = {}
        if position + 1 < len(instants):
            on_call = on_call_between(counts, active_overrides, overrides,
                                      spec.fallback_user_id)
        current = set(on_call.items())
        for pair in [pair for pair in open_since if pair not in current]:
            found.append(Shift(pair[0], open_since.pop(pair), instant, pair[1]))
        for pair in current:
            open_since.setdefault(pair, instant)
    found.sort(key=lambda shift: (shift.start, shift.user_id, shift.end))
    return found


def on_call_between(counts, active_overrides, overrides, fallback_user_id) -> dict:
    """user id → override id (None: from the layers or the fallback) for one stretch
    between two boundaries."""
    base = []
    for layer in sorted(counts, reverse=True):
        if counts[layer]:
            base = list(counts[layer])
            break
    if not base and fallback_user_id is not None:
        base = [fallback_user_id]
    # user id → (override id, whose place they hold): an override replacing X acts on
    # whoever holds X's place by then, so of two swaps for X the later one wins, and the
    # one who took X's place can hand it on.
    on_call = {user_id: (None, user_id) for user_id in base}
    for order in sorted(active_overrides):
        override = overrides[order]
        if override.replaces_id is None:
            on_call = {override.user_id: (override.override_id, override.user_id)}
            continue
        holder = next((user_id for user_id, (_, place) in on_call.items()
                       if place == override.replaces_id), None)
        if holder is None and override.replaces_id in on_call:
            holder = override.replaces_id
        if holder is None:
            continue  # X is not on call here: the override changes nothing
        _, place = on_call.pop(holder)
        on_call[override.user_id] = (override.override_id, place)
    return {user_id: override_id for user_id, (override_id, _) in on_call.items()}


def users_at(spec: ScheduleSpec, at: datetime) -> list[int]:
    """The ids of the users on call at ``at``: the shifts of [at, at + 1 µs), so this
    never disagrees with compute_shifts."""
    return sorted({shift.user_id for shift in compute_shifts(spec, at, at + ONE_MICROSECOND)})


def parse_clock(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def windows_from_restrictions(restrictions) -> tuple:
    """Window objects from normalized restrictions (oncall/validation.py)."""
    return tuple(
        Window(weekday, parse_clock(entry["start"]), parse_clock(entry["end"]))
        for entry in restrictions for weekday in entry["weekdays"]
    )


def handoff_of(handoff_date: date, handoff_time: time) -> datetime:
    return datetime.combine(handoff_date, handoff_time.replace(tzinfo=None))
