"""A schedule's final shifts as an iCalendar feed (RFC 5545), for calendar apps
(docs/api.md#on-call)."""

from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from icalendar import Calendar, Event

from oncall.models import Schedule
from oncall.shifts import schedule_shifts

PRODID = "-//Tocsin//On-call schedule//EN"
# What the feed covers: the recent past (a shift just ended is still worth seeing) and the
# next three months, computed afresh on every fetch.
PAST = timedelta(days=7)
FUTURE = timedelta(days=90)


def feed_window(now: datetime) -> tuple[datetime, datetime]:
    """From midnight UTC seven days back, so the window (and the first event's start, which
    is clipped to it) moves once a day rather than on every fetch."""
    start = (now - PAST).replace(hour=0, minute=0, second=0, microsecond=0)
    return start, now + FUTURE


def event_uid(schedule: Schedule, user_id: int, start: datetime) -> str:
    """Stable for a given schedule, user and start, so a calendar that fetches the feed
    again updates its events instead of adding copies."""
    host = urlsplit(settings.TOCSIN_PUBLIC_URL).hostname or "tocsin"
    return f"schedule-{schedule.pk}-user-{user_id}-{start:%Y%m%dT%H%M%SZ}@{host}"


def schedule_calendar(schedule: Schedule, now: datetime) -> bytes:
    start, end = feed_window(now)
    shifts = schedule_shifts(schedule, start, end)
    users = get_user_model().objects.in_bulk({shift.user_id for shift in shifts})
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", f"On call: {schedule.name}")
    calendar.add("x-wr-timezone", schedule.time_zone)
    for shift in shifts:
        user = users.get(shift.user_id)
        username = user.username if user else f"user {shift.user_id}"
        event = Event()
        event.add("uid", event_uid(schedule, shift.user_id, shift.start))
        event.add("dtstamp", now)
        event.add("dtstart", shift.start)
        event.add("dtend", shift.end)
        summary = f"On call: {username} ({schedule.name})"
        if shift.override_id is not None:
            summary += " (override)"
        event.add("summary", summary)
        event.add("transp", "TRANSPARENT")  # being on call does not make anyone busy
        calendar.add_component(event)
    return calendar.to_ical()
