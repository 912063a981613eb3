"""The schedule page's two-week timeline: the final shifts (oncall.shifts.schedule_shifts)
laid out as one row per local day, each shift a bar placed by its share of that day.

Pure layout from shifts to rows; oncall/admin/schedules.py renders it."""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

UTC = ZoneInfo("UTC")

# Enough distinct colours for the people of one fortnight; static/tocsin/admin.css has one
# rule per index.
PALETTE_SIZE = 8


@dataclass
class Bar:
    user_id: int | None  # None: nobody on call
    label: str
    start: datetime  # the whole shift, not only the part on this day
    end: datetime
    left: float  # percent of the day
    width: float
    colour: int
    override_id: int | None = None
    lane: int = 0


@dataclass
class Day:
    date: date
    is_today: bool
    is_weekend: bool
    bars: list[Bar] = field(default_factory=list)
    lanes: int = 1
    now_at: float | None = None  # percent of the day where "now" is, on today's row


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The instant, in UTC: Python subtracts two datetimes of one zone as wall-clock
    times, which would make every day 24 hours long. (Where a zone skips midnight, fold=0
    still gives an instant near it, good enough for drawing.)"""
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def build_days(shifts, *, first_day: date, days: int, zone: ZoneInfo, now: datetime,
               names: dict[int, str], people: list[int] = ()) -> list[Day]:
    """One Day per local date from ``first_day``, with a bar per shift part on it and a
    "nobody" bar for every gap. ``people`` (the schedule's participants, in a fixed order)
    gives each their colour, so a person keeps it on every fortnight; anyone else (an
    override's user) takes the next one."""
    colours: dict[int, int] = {}
    for user_id in [*people, *(shift.user_id for shift in shifts)]:
        colours.setdefault(user_id, len(colours) % PALETTE_SIZE)
    today = now.astimezone(zone).date()
    rows = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        start = local_midnight(day, zone)
        end = local_midnight(day + timedelta(days=1), zone)
        length = (end - start).total_seconds()
        row = Day(date=day, is_today=day == today, is_weekend=day.weekday() >= 5)
        covered = []
        for shift in shifts:
            if shift.end <= start or shift.start >= end:
                continue
            part_start, part_end = max(shift.start, start), min(shift.end, end)
            covered.append((part_start, part_end))
            row.bars.append(Bar(
                user_id=shift.user_id, label=names.get(shift.user_id, f"#{shift.user_id}"),
                start=shift.start, end=shift.end,
                left=100 * (part_start - start).total_seconds() / length,
                width=100 * (part_end - part_start).total_seconds() / length,
                colour=colours[shift.user_id], override_id=shift.override_id,
            ))
        row.bars.extend(gaps(covered, start, end, length))
        row.lanes = assign_lanes(row.bars)
        if row.is_today:
            row.now_at = 100 * (now - start).total_seconds() / length
        rows.append(row)
    return rows


def gaps(covered, start, end, length) -> list[Bar]:
    """Bars for the stretches of the day where nobody is on call."""
    found, cursor = [], start
    for part_start, part_end in sorted(covered):
        if part_start > cursor:
            found.append((cursor, part_start))
        cursor = max(cursor, part_end)
    if cursor < end:
        found.append((cursor, end))
    return [
        Bar(user_id=None, label="Nobody", start=gap_start, end=gap_end,
            left=100 * (gap_start - start).total_seconds() / length,
            width=100 * (gap_end - gap_start).total_seconds() / length, colour=-1)
        for gap_start, gap_end in found
    ]


def assign_lanes(bars: list[Bar]) -> int:
    """Stack bars that overlap (several people on call at once) in lanes; returns how many."""
    lane_ends: list[float] = []
    for bar in sorted(bars, key=lambda b: (b.left, -b.width)):
        for lane, lane_end in enumerate(lane_ends):
            if bar.left >= lane_end - 1e-9:
                bar.lane = lane
                lane_ends[lane] = bar.left + bar.width
                break
        else:
            bar.lane = len(lane_ends)
            lane_ends.append(bar.left + bar.width)
    return max(1, len(lane_ends))
