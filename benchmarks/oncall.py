"""On-call benchmark: a year of final on-call intervals for a 3-layer schedule with
restrictions and overrides, next to the bare cost of turning that year's handoffs into
instants, measured in the same process and run.

    .venv/bin/python benchmarks/oncall.py [--rounds R] [--schedules N]

Runs in-process on a scratch SQLite file in a temp directory (removed afterwards). See
benchmarks/README.md.
"""

import argparse
import logging
import os
import platform
import secrets
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ZONE = "Europe/Berlin"
YEAR = (datetime(2027, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC))
ROTATIONS = [
    # (name, layer, kind, length, handoff, participants, restrictions)
    ("Weekend days", 3, "hourly", 4, datetime(2020, 1, 4, 8), 6,
     [{"weekdays": [5, 6], "start": "08:00", "end": "20:00"}]),
    ("Weeknights", 2, "daily", 1, datetime(2020, 1, 6, 18), 4,
     [{"weekdays": [0, 1, 2, 3, 4], "start": "18:00", "end": "08:00"}]),
    ("Primary", 1, "weekly", 1, datetime(2020, 1, 6, 9), 5, []),
]
OVERRIDES = 48


def best_of(rounds: int, func) -> float:
    results = []
    for _ in range(rounds):
        started = time.perf_counter()
        func()
        results.append(time.perf_counter() - started)
    return min(results)


def raw_handoffs(rotations, start: datetime, end: datetime) -> list[datetime]:
    """Every local handoff of the rotations inside the range, as naive local times: what
    any engine must at least turn into instants."""
    zone = ZoneInfo(ZONE)
    local_start = start.astimezone(zone).replace(tzinfo=None)
    local_end = end.astimezone(zone).replace(tzinfo=None)
    found = []
    for rotation in rotations:
        step = rotation.unit
        moment = rotation.handoff + ((local_start - rotation.handoff) // step) * step
        while moment < local_end:
            found.append(moment)
            moment += step
    return found


def run(args) -> int:
    # Imported here: Django may be set up only once the scratch database is in the
    # environment (main sets it).
    import django

    django.setup()
    # Creating the overrides tells their users (handoff notices); the benchmark's users
    # have no address, and the notices are not what is measured.
    logging.getLogger("oncall.handoffs").setLevel(logging.WARNING)
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from incidents.models import Team
    from oncall import shifts
    from oncall.models import Override, Rotation, Schedule
    from oncall.shift_engine import compute_shifts

    call_command("migrate", verbosity=0)
    team = Team.objects.create(name="Benchmark")
    users = [User.objects.create(username=f"user{number}") for number in range(20)]
    schedules = []
    for number in range(args.schedules):
        schedule = Schedule.objects.create(name=f"Schedule {number:02d}", team=team,
                                           time_zone=ZONE, fallback_user=users[0])
        for index, (name, layer, kind, length, handoff, count, windows) in enumerate(ROTATIONS):
            Rotation.objects.create(
                schedule=schedule, name=name, layer=layer, shift_kind=kind,
                shift_length=length, handoff_date=handoff.date(), handoff_time=handoff.time(),
                participants=[users[1 + (index * 6 + person) % 19].pk for person in range(count)],
                restrictions=windows)
        for index in range(OVERRIDES):
            start = YEAR[0] + timedelta(days=7 * index + 2, hours=index % 24)
            Override.objects.create(
                schedule=schedule, user=users[19], start=start,
                end=start + timedelta(hours=6 + index % 30),
                replaces=None if index % 2 else users[1 + index % 6])
        schedules.append(schedule)
    schedule = schedules[0]
    spec = shifts.schedule_spec(schedule, *YEAR)
    handoffs = raw_handoffs(spec.rotations, *YEAR)
    zone = ZoneInfo(ZONE)

    def baseline():
        for moment in handoffs:
            moment.replace(tzinfo=zone).astimezone(UTC)

    year_result = compute_shifts(spec, *YEAR)
    figures = {
        "baseline": best_of(args.rounds, baseline),
        "engine": best_of(args.rounds, lambda: compute_shifts(spec, *YEAR)),
        "loaded": best_of(args.rounds, lambda: shifts.schedule_shifts(schedule, *YEAR)),
        "two weeks": best_of(args.rounds, lambda: shifts.schedule_shifts(
            schedule, YEAR[0] + timedelta(days=180), YEAR[0] + timedelta(days=194))),
    }
    instants = [YEAR[0] + timedelta(hours=7 * step + 0.5) for step in range(200)]
    figures["on_call_at"] = best_of(args.rounds, lambda: [
        shifts.on_call_at(schedule, at) for at in instants]) / len(instants)
    # The same rotations started in 2026 instead of 2020: finding the shift at an instant
    # is arithmetic, so the age of a rotation must not matter.
    young = spec.__class__(spec.time_zone, spec.fallback_user_id, tuple(
        rotation.__class__(**{**rotation.__dict__,
                              "handoff": rotation.handoff.replace(year=2026)})
        for rotation in spec.rotations), spec.overrides)
    old_at = best_of(args.rounds, lambda: [compute_shifts(spec, at, at + timedelta(
        microseconds=1)) for at in instants]) / len(instants)
    young_at = best_of(args.rounds, lambda: [compute_shifts(young, at, at + timedelta(
        microseconds=1)) for at in instants]) / len(instants)
    figures["everywhere"] = best_of(args.rounds, lambda: shifts.on_call_now_everywhere(
        YEAR[0] + timedelta(days=100)))

    print(f"Tocsin on-call benchmark, {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, "
          f"Python {platform.python_version()}, SQLite, best of {args.rounds}")
    print(f"schedule: {ZONE}, 3 layers (hourly x4 weekend days, daily weeknights, weekly), "
          f"{OVERRIDES} overrides, fallback user; handoffs in 2020")
    print(f"one year ({YEAR[0]:%Y-%m-%d} to {YEAR[1]:%Y-%m-%d}): {len(handoffs)} handoffs, "
          f"{len(year_result)} final intervals")
    ms = 1000
    print(f"  {'baseline: handoffs to instants (zoneinfo)':48} {figures['baseline'] * ms:8.1f} ms")
    print(f"  {'engine: compute_shifts, one year':48} {figures['engine'] * ms:8.1f} ms")
    print(f"  {'schedule_shifts, one year (loads, 3 queries)':48} {figures['loaded'] * ms:8.1f} ms")
    print(f"  {'schedule_shifts, two weeks (the timeline)':48} {figures['two weeks'] * ms:8.1f} ms")
    print(f"  {'on_call_at (loads, 3 queries)':48} {figures['on_call_at'] * ms:8.3f} ms")
    print(f"  {'who is on call at T, rotations from 2020':48} {old_at * ms:8.3f} ms")
    print(f"  {'who is on call at T, rotations from 2026':48} {young_at * ms:8.3f} ms")
    print(f"  {f'on_call_now_everywhere, {args.schedules} schedules':48} "
          f"{figures['everywhere'] * ms:8.1f} ms")
    print(f"ratio engine / baseline: {figures['engine'] / figures['baseline']:.1f}x; "
          f"2020 / 2026 rotations: {old_at / young_at:.2f}x")
    if figures["loaded"] >= 1.0:
        print("FAIL: a year took a second or more")
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--schedules", type=int, default=30,
                        help="schedules for on_call_now_everywhere (each like the first)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tocsin-oncall-bench-"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "tocsin.settings"
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ.pop("REDIS_URL", None)
    # The settings refuse to load without a real key (DEBUG is off here, as in production).
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    try:
        status = run(args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(status)


if __name__ == "__main__":
    main()
