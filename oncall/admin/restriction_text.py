"""Rotation restrictions as people write them: ``Mon-Fri 09:00-17:00; Sat 22:00-06:00``.

The admin shows and accepts this text; the stored form stays the JSON of docs/on-call.md
(``[{"weekdays": [0-6], "start": "HH:MM", "end": "HH:MM"}]``, Monday = 0), checked by
oncall.validation.normalize_restrictions like the API's input."""

import re

from django.core.exceptions import ValidationError

DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
EVERY_DAY = "Daily"
ENTRY = re.compile(r"^(?P<days>.+?)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})$")
DAY_NAMES = {name.lower(): index for index, name in enumerate(DAYS)}
# Full names are accepted too (Monday, tuesday…), since people type them.
DAY_NAMES.update({full: index for index, full in enumerate(
    ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"])})


def parse_day(word: str, entry: str) -> int:
    try:
        return DAY_NAMES[word.strip().lower()]
    except KeyError:
        raise ValidationError(
            f"“{word.strip()}” in “{entry}” is not a weekday: use Mon, Tue, Wed, Thu, Fri, "
            f"Sat, Sun.") from None


def parse_days(text: str, entry: str) -> list[int]:
    if text.strip().lower() in ("daily", "every day", "all"):
        return list(range(7))
    days = []
    for part in text.split(","):
        if "-" in part:
            first, last = (parse_day(word, entry) for word in part.split("-", 1))
            # Fri-Mon wraps over the weekend: Fri, Sat, Sun, Mon.
            span = (last - first) % 7
            days.extend((first + step) % 7 for step in range(span + 1))
        else:
            days.append(parse_day(part, entry))
    return sorted(set(days))


def parse_restrictions(text: str) -> list[dict]:
    """The JSON form of the text (not yet normalized); ValidationError names the entry."""
    restrictions = []
    for entry in re.split(r"[;\n]", text or ""):
        entry = " ".join(entry.split())
        if not entry:
            continue
        match = ENTRY.match(entry)
        if match is None:
            raise ValidationError(
                f"“{entry}” should read like “Mon-Fri 09:00-17:00”: days, then a start "
                f"and an end time.")
        restrictions.append({
            "weekdays": parse_days(match["days"], entry),
            "start": match["start"].zfill(5),
            "end": match["end"].zfill(5),
        })
    return restrictions


def format_days(weekdays) -> str:
    days = sorted(set(weekdays))
    if len(days) == 7:
        return EVERY_DAY
    runs, run = [], []
    for day in days:
        if run and day != run[-1] + 1:
            runs.append(run)
            run = []
        run.append(day)
    if run:
        runs.append(run)
    parts = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{DAYS[run[0]]}-{DAYS[run[-1]]}")
        else:
            parts.extend(DAYS[day] for day in run)
    return ",".join(parts)


def format_restrictions(restrictions) -> str:
    return "; ".join(
        f"{format_days(window.get('weekdays', []))} {window.get('start')}-{window.get('end')}"
        for window in restrictions or []
    )
