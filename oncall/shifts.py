"""Who is on call: a schedule's rotations, layers, restrictions and overrides turned into
shifts (docs/on-call.md#schedules). STUB: the engine helper replaces this module."""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Shift:
    """A final on-call interval of one user (aware datetimes, UTC)."""

    user_id: int
    start: datetime
    end: datetime
    # The override that put the user on call, if one did.
    override_id: int | None = None


def schedule_shifts(schedule, start: datetime, end: datetime) -> list[Shift]:
    """The final on-call intervals of ``schedule`` between ``start`` and ``end`` (clipped
    to them), after layers, restrictions, overrides and the fallback user; sorted by start,
    then user id; consecutive intervals of one user merged."""
    return []


def on_call_at(schedule, at: datetime) -> list[int]:
    """The ids of the users on call at instant ``at`` (sorted)."""
    return []


def user_shifts(user_id: int, start: datetime, end: datetime) -> list[tuple]:
    """[(schedule, Shift)] of one user across every schedule between start and end, by
    start: their upcoming shifts (profile page, handoff notices)."""
    return []


def on_call_now_everywhere(at: datetime | None = None) -> list[tuple]:
    """[(schedule, [user ids])] for every schedule at ``at`` (default now), by schedule
    name: the admin index panel and GET /api/v1/oncall/."""
    return []
