"""Escalation benchmark: how late escalation steps run and page, and whether each page
goes out exactly once, with real qclusters on PostgreSQL and Redis, against baselines
measured in the same run (a bare task's round trip through the same broker, one
page_user call in-process, the clusters' idle CPU).

    .venv/bin/python benchmarks/escalation.py [--incidents 200] [--rate 10] [--clusters 2]
        [--workers 2] [--deadline 600]

See benchmarks/README.md. It opens ``--incidents`` incidents whose policy has three
steps a minute apart, each paging one user by ntfy to a local HTTP sink, and waits for
every step and for the escalations to be exhausted. Everything listens on and connects
to 127.0.0.1 only; the scratch database and the Redis db are emptied afterwards.
"""

import argparse
import datetime
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.harness import BIN, BenchError, ScratchDatabase, stop_leaders  # noqa: E402
from benchmarks.ingest import log, percentile  # noqa: E402

DB_NAME = "tocsin_processes_bench"
# A Redis db of its own, so a run never mixes with another benchmark's queue (db 15).
REDIS_URL = "redis://127.0.0.1:6379/11"
STEPS = 3
DELAY_MINUTES = 1
TARGET_P99 = 30.0  # seconds: the lateness the escalation engine must stay under
PINGS = 50  # bare tasks for the broker baseline
PAGE_CALLS = 50  # in-process page_user calls for the cost baseline
# The clusters' CPU with nothing to do: a whole minute, so each minute job runs once.
IDLE_SECONDS = 60
QUIET_SECONDS = 10  # after the last expected arrival, for duplicates to show up
TITLE_NUMBER = re.compile(r"#(\d+)")
TICKS = os.sysconf("SC_CLK_TCK")


def ping(url: str) -> str:
    """The baseline task (run by the workers): one GET to the sink."""
    with urllib.request.urlopen(url, timeout=10) as response:
        response.read()
    return "ok"


class Sink:
    """ntfy's stand-in: records each POST's topic (one per step), the incident number in
    its Title and the wall-clock arrival; GET /ping/<i> records the baseline tasks."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pushes: list[tuple[int, int, float]] = []  # (step index, number, arrival)
        self.pings: dict[str, float] = {}
        self.other = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self):
                arrived = time.time()
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = b'{"id":"bench"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                sink.record(self.path, self.headers.get("Title", ""), arrived)

            do_GET = do_POST = answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def record(self, path: str, title: str, arrived: float) -> None:
        topic = re.fullmatch(r"/step-(\d)", path)
        number = TITLE_NUMBER.search(title)
        with self.lock:
            if path.startswith("/ping/"):
                self.pings[path] = arrived
            elif topic and number:
                self.pushes.append((int(topic.group(1)), int(number.group(1)), arrived))
            else:
                self.other += 1

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Clusters:
    """``manage.py qcluster`` subprocesses, each in its own session; their CPU is read
    from /proc for the whole session (the cluster and its forked workers), and that of
    their PostgreSQL backends (found by application_name) alongside."""

    def __init__(self, env: dict, workdir: Path):
        self.env, self.workdir = env, workdir
        self.processes: list[subprocess.Popen] = []

    def start(self, count: int) -> None:
        for n in range(count):
            with (self.workdir / f"qcluster-{n}.log").open("w") as out:
                self.processes.append(subprocess.Popen(
                    [sys.executable, "manage.py", "qcluster"], cwd=ROOT, stdout=out,
                    stderr=subprocess.STDOUT, start_new_session=True,
                    env={**self.env, "PGAPPNAME": f"bench-cluster-{n}"}))

    def check_running(self) -> None:
        if any(process.poll() is not None for process in self.processes):
            raise BenchError(f"a qcluster exited; logs in {self.workdir}")

    def cpu_seconds(self) -> float:
        sessions = {process.pid for process in self.processes}
        total = 0
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                fields = proc_stat(int(entry.name))
                # After "pid (comm)": state, ppid, pgrp, session, …, utime, stime,
                # cutime, cstime (fields 3, 4, 5, 6, …, 14-17 of proc(5)).
                if fields and int(fields[3]) in sessions:
                    total += sum(int(value) for value in fields[11:15])
        return total / TICKS

    def stop(self) -> None:
        stop_leaders(self.processes)

    def log_errors(self) -> int:
        return sum(1 for path in self.workdir.glob("qcluster-*.log")
                   for line in path.read_text(errors="replace").splitlines()
                   if "Traceback" in line or "ERROR" in line)


def proc_stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


class CpuSampler(threading.Thread):
    """Every half second: the clusters' CPU seconds so far, and their database backends'
    (summed over the backends' own lifetimes, by pid)."""

    def __init__(self, clusters: Clusters, db: ScratchDatabase):
        super().__init__(daemon=True)
        self.clusters, self.db = clusters, db
        self.samples: list[tuple[float, float, float]] = []  # (wall, clusters, database)
        self.backend_ticks: dict[int, int] = {}
        self.halt = threading.Event()

    def database_seconds(self) -> float:
        pids = [pid for pid, in self.db.query(
            "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'bench-cluster-%%'")]
        for pid in pids:
            fields = proc_stat(pid)
            if fields:
                self.backend_ticks[pid] = int(fields[11]) + int(fields[12])
        return sum(self.backend_ticks.values()) / TICKS

    def run(self) -> None:
        while not self.halt.wait(0.5):
            self.samples.append((time.time(), self.clusters.cpu_seconds(),
                                 self.database_seconds()))

    def between(self, start: float, end: float) -> tuple[float, float]:
        """CPU seconds (clusters, database) used from ``start`` to ``end`` (wall clock)."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return 0.0, 0.0
        return inside[-1][1] - inside[0][1], inside[-1][2] - inside[0][2]


def bench_env(args, database_url: str) -> dict:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DATABASE_URL", "REDIS_URL", "DJANGO_", "TOCSIN_"))}
    env.update(
        PATH=f"{BIN}:{env.get('PATH', '')}", SECRET_KEY=secrets.token_urlsafe(40),
        DJANGO_SETTINGS_MODULE="tocsin.settings", DATABASE_URL=database_url, REDIS_URL=REDIS_URL,
        LOG_LEVEL="WARNING", DEBUG="false", TOCSIN_WORKERS=str(args.workers),
        # The ntfy "server" is the sink on 127.0.0.1.
        TOCSIN_ALLOW_PRIVATE_DESTINATIONS="true")
    return env


def forget_queue() -> None:
    import redis  # as in benchmarks/harness.py

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    for name in client.scan_iter("django_q:*", count=100):
        client.delete(name)


def stats(values: list[float]) -> dict:
    return {"n": len(values), "p50": percentile(values, 50), "p99": percentile(values, 99),
            "max": max(values) if values else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0,
                        help="incidents opened per second (0: all at once)")
    parser.add_argument("--clusters", type=int, default=2, help="qcluster processes")
    parser.add_argument("--workers", type=int, default=2, help="workers per qcluster")
    parser.add_argument("--deadline", type=float, default=600, help="seconds, in all")
    args = parser.parse_args()
    if not (0 < args.incidents <= 2000 and 0 <= args.rate <= 500 and 1 <= args.clusters <= 4
            and 1 <= args.workers <= 8 and 60 < args.deadline <= 1800):
        parser.error("out of range: incidents 1-2000, rate 0-500, clusters 1-4, workers "
                     "1-8, deadline 61-1800")
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    workdir = Path(tempfile.mkdtemp(prefix="tocsin-bench-escalation-"))
    db = ScratchDatabase("postgresql", workdir, DB_NAME)
    env = bench_env(args, db.url)
    # This process opens the incidents (and queues their tasks) itself: the same database,
    # broker and SECRET_KEY as the workers, which must read what it signs.
    for key in [k for k in os.environ if k not in env]:
        del os.environ[key]
    os.environ.update(env)
    clusters = Clusters(env, workdir)
    ok, result = False, None
    try:
        log(f"migrating {DB_NAME}; broker Redis db 11")
        db.create()
        migrated = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"],
                                  cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=300)
        if migrated.returncode:
            raise BenchError(f"migrate failed:\n{migrated.stdout[-2000:]}{migrated.stderr}")
        forget_queue()
        result = run(args, db, clusters)
        result["log_errors"] = clusters.log_errors()
        ok = True
    except KeyboardInterrupt:
        print("\ninterrupted; processes stopped, scratch database removed", file=sys.stderr)
        return 130
    finally:
        clusters.stop()
        forget_queue()
        if "django.db" in sys.modules:  # set up by run(): its connection must go first
            sys.modules["django.db"].connections.close_all()
        db.drop()
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"  logs kept in {workdir}", file=sys.stderr)
    report(result, args)
    failed = (result["worst_p99"] is None or result["worst_p99"] >= TARGET_P99
              or result["duplicates"] or result["missed"] or result["page_problems"])
    return 1 if failed else 0


def run(args, db: ScratchDatabase, clusters: Clusters) -> dict:
    """Set up, measure the baselines, open the incidents, wait for every step and the
    exhaustion, and read back what happened."""
    # Imported here, as in benchmarks/oncall.py: Django may be set up only once main()
    # has put the scratch database and the broker in the environment.
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.db import transaction
    from django_q.tasks import async_task

    from incidents import lifecycle
    from incidents.models import EscalationPolicy, Service, Team, TimelineEntry
    from oncall import sending
    from oncall.models import (
        ContactMethod,
        Escalation,
        EscalationStep,
        EscalationTarget,
        Page,
        PersonalNotification,
    )
    from tocsin import taskqueue

    sink = Sink()
    sampler = CpuSampler(clusters, db)
    try:
        team = Team.objects.create(name="Benchmark")
        policy = EscalationPolicy.objects.create(name="Benchmark policy", team=team)

        def ntfy_user(name: str, topic: str):
            user = User.objects.create_user(name, email=f"{name}@example.com")
            method = ContactMethod.objects.create(user=user, kind="ntfy",
                                                  address=f"{sink.url}/{topic}")
            user.notification_rules.create(contact_method=method, delay_minutes=0)
            return user

        for step in range(STEPS):
            row = EscalationStep.objects.create(policy=policy, position=step,
                                                delay_minutes=DELAY_MINUTES)
            EscalationTarget.objects.create(step=row, user=ntfy_user(f"step{step}",
                                                                     f"step-{step}"))
        service = Service.objects.create(name="Benchmark", team=team, escalation_policy=policy)
        quiet = Service.objects.create(name="Baseline", team=team)  # no policy
        baseline_incident = lifecycle.open_incident(service=quiet, title="Baseline",
                                                    entity_id="baseline")
        baseline_user = ntfy_user("baseline", "baseline")

        clusters.start(args.clusters)
        if not wait(lambda: db.query(
                "SELECT COUNT(DISTINCT application_name) FROM pg_stat_activity "
                "WHERE application_name LIKE 'bench-cluster-%%'")[0][0] == args.clusters, 60):
            raise BenchError(f"the qclusters did not connect; logs in {clusters.workdir}")
        sampler.start()
        log(f"{args.clusters} qcluster(s) up; baseline: {PINGS} bare tasks")
        sent = {}
        for i in range(PINGS):
            sent[f"/ping/{i}"] = time.time()
            async_task("benchmarks.escalation.ping", f"{sink.url}/ping/{i}",
                       broker=taskqueue.broker())
            time.sleep(0.2)
        wait(lambda: len(sink.pings) >= PINGS, 30)
        trips = [sink.pings[path] - at for path, at in sent.items() if path in sink.pings]

        calls = []
        for _ in range(PAGE_CALLS):
            started = time.perf_counter()
            with transaction.atomic():
                sending.page_user(baseline_incident, baseline_user, reason="baseline")
                # Nothing is kept, so nothing is queued or sent.
                transaction.set_rollback(True)
            calls.append(time.perf_counter() - started)

        log(f"idle clusters for {IDLE_SECONDS} s")
        idle_from = time.time()
        time.sleep(IDLE_SECONDS)
        idle_cpu, idle_db = sampler.between(idle_from, time.time())
        idle_rate, idle_db_rate = idle_cpu / IDLE_SECONDS, idle_db / IDLE_SECONDS

        log(f"opening {args.incidents} incidents")
        load_before = os.getloadavg()
        began = time.time()
        for i in range(args.incidents):
            if args.rate:
                time.sleep(max(0.0, began + i / args.rate - time.time()))
            lifecycle.open_incident(service=service, title=f"Benchmark escalation {i}",
                                    entity_id=f"esc-{i}")
        opening = time.time() - began
        expected = args.incidents * STEPS
        deadline = began + args.deadline - 120

        def finished() -> bool:
            clusters.check_running()
            return len(sink.pushes) >= expected and Escalation.objects.filter(
                incident__service=service, status=Escalation.Status.EXHAUSTED).count() \
                == args.incidents

        log(f"waiting for {STEPS} steps and the exhaustion (about "
            f"{STEPS * DELAY_MINUTES + 1} min)")
        wait(finished, max(0.0, deadline - time.time()), every=1.0)
        time.sleep(QUIET_SECONDS)
        load_after = os.getloadavg()
        sampler.halt.set()

        incidents = {number: (pk, created.timestamp()) for pk, number, created in
                     service.incidents.values_list("pk", "number", "created_at")}
        pages: dict[tuple, list[float]] = {}
        for pk, step, at in Page.objects.filter(incident__service=service).values_list(
                "incident_id", "step", "created_at"):
            pages.setdefault((pk, step), []).append(at.timestamp())
        exhausted = dict(TimelineEntry.objects.filter(
            incident__service=service, kind=TimelineEntry.Kind.ESCALATION,
            data__key__startswith="policy-exhausted").values_list("incident_id", "created_at"))
        messages = list(PersonalNotification.objects.filter(incident__service=service)
                        .values_list("status", "attempts"))
    finally:
        sampler.halt.set()
        sink.close()

    with sink.lock:
        pushes, other = list(sink.pushes), sink.other
    arrivals: dict[tuple, list[float]] = {}
    for step, number, at in pushes:
        if number in incidents:
            arrivals.setdefault((incidents[number][0], step), []).append(at)
        else:
            other += 1
    steps = [{"page_own": [], "page_nominal": [], "message_nominal": []} for _ in range(STEPS)]
    late_exhausted, missed = [], 0
    for pk, created in incidents.values():
        for step in range(STEPS):
            nominal = created + step * DELAY_MINUTES * 60
            previous = pages.get((pk, step - 1))
            own = created if step == 0 else (min(previous) + DELAY_MINUTES * 60
                                             if previous else None)
            if (pk, step) in pages:
                paged = min(pages[(pk, step)])
                steps[step]["page_nominal"].append(paged - nominal)
                if own is not None:
                    steps[step]["page_own"].append(paged - own)
            if (pk, step) in arrivals:
                steps[step]["message_nominal"].append(min(arrivals[(pk, step)]) - nominal)
            else:
                missed += 1
        last = pages.get((pk, STEPS - 1))
        if pk in exhausted and last:
            late_exhausted.append(exhausted[pk].timestamp() - min(last) - DELAY_MINUTES * 60)
    steps = [{key: stats(values) for key, values in step.items()} for step in steps]

    first = min(created for _, created in incidents.values())
    cpu = []
    for window in range(STEPS + 1):
        start = first + window * DELAY_MINUTES * 60 - 0.5
        end = min(start + DELAY_MINUTES * 60, sampler.samples[-1][0])
        used, used_db = sampler.between(start, end)
        length = max(0.0, end - start)
        cpu.append({"clusters": used, "net": used - idle_rate * length, "db": used_db,
                    "db_net": used_db - idle_db_rate * length})
    worst = [s["message_nominal"]["p99"] for s in steps]
    return {
        "ping": stats(trips), "page_call": stats(calls), "idle_cpu": idle_rate * 60,
        "idle_db_cpu": idle_db_rate * 60, "opening": opening, "steps": steps,
        "exhausted": stats(late_exhausted), "cpu": cpu,
        "worst_p99": None if None in worst else max(worst),
        "expected": expected, "arrived": len(pushes), "other": other, "missed": missed,
        "duplicates": sum(len(times) - 1 for times in arrivals.values()),
        "pages": sum(len(times) for times in pages.values()),
        "page_problems": sum(1 for pk, _ in incidents.values() for step in range(STEPS)
                             if len(pages.get((pk, step), [])) != 1),
        "messages": len(messages),
        "sent_once": sum(1 for status, attempts in messages
                         if status == "sent" and attempts == 1),
        "exhausted_count": len(exhausted),
        "load_before": " ".join(f"{x:.2f}" for x in load_before),
        "load_after": " ".join(f"{x:.2f}" for x in load_after),
    }


def wait(condition, seconds: float, every: float = 0.2) -> bool:
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        if condition():
            return True
        time.sleep(every)
    return bool(condition())


def ms(value) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def sec(value) -> str:
    return "-" if value is None else f"{value:.2f} s"


def report(r: dict, args) -> None:
    print(f"\nTocsin escalation benchmark, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M}"
          " UTC")
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPU cores; PostgreSQL, "
          f"Redis broker; {args.clusters} qcluster(s) x {args.workers} workers; "
          f"{args.incidents} incidents opened at "
          f"{'once' if not args.rate else f'{args.rate:g}/s'} (in {sec(r['opening'])}), "
          f"policy of {STEPS} steps {DELAY_MINUTES} min apart, one ntfy user per step")
    print("\nbaselines (same run):")
    print(f"  bare task round trip (enqueue -> worker GET at sink)  p50 {ms(r['ping']['p50'])}"
          f"  p99 {ms(r['ping']['p99'])}  max {ms(r['ping']['max'])}  (n={r['ping']['n']})")
    print(f"  one page_user call in-process (rolled back)           p50 "
          f"{ms(r['page_call']['p50'])}  p99 {ms(r['page_call']['p99'])}")
    print(f"  idle clusters: {r['idle_cpu']:.2f} CPU s/min, their database backends "
          f"{r['idle_db_cpu']:.2f} CPU s/min")
    lines = [("lateness", "n", "p50", "p99", "max", "p50 / task trip")]
    for label, key in (("page vs step's own due (prev page + delay)", "page_own"),
                       ("page vs nominal due (opened + delays)", "page_nominal"),
                       ("message at sink vs nominal due", "message_nominal")):
        for step in range(STEPS):
            s = r["steps"][step][key]
            lines.append((f"  step {step + 1}: {label}", str(s["n"]), sec(s["p50"]),
                          sec(s["p99"]), sec(s["max"]),
                          ratio(s["p50"], r["ping"]["p50"])))
    s = r["exhausted"]
    lines.append(("  exhausted vs due (last page + delay)", str(s["n"]), sec(s["p50"]),
                  sec(s["p99"]), sec(s["max"]), ratio(s["p50"], r["ping"]["p50"])))
    print()
    table(lines)
    print("\nCPU per step window (60 s from the step's first nominal due; idle subtracted):")
    lines = [("", "clusters", "net", "per page", "/ page_user", "db backends", "net")]
    for step, cpu in enumerate(r["cpu"]):
        label = f"  step {step + 1}" if step < STEPS else "  exhaustion"
        per_page = cpu["net"] / args.incidents
        lines.append((label, sec(cpu["clusters"]), sec(cpu["net"]), ms(per_page),
                      ratio(per_page, r["page_call"]["p50"]), sec(cpu["db"]),
                      sec(cpu["db_net"])))
    table(lines)
    print(f"\nexactly once: {r['arrived']} pushes at the sink for {r['expected']} pages "
          f"expected; {r['duplicates']} duplicates, {r['missed']} missed, {r['other']} "
          f"unrecognised; Page rows {r['pages']} ({r['page_problems']} (incident, step) "
          f"pairs without exactly one); messages {r['sent_once']}/{r['messages']} sent "
          f"with 1 attempt; escalations exhausted {r['exhausted_count']}/{args.incidents}")
    print(f"ERROR/Traceback lines in the qcluster logs: {r['log_errors']}; load average "
          f"before / after: {r['load_before']} / {r['load_after']}")
    verdict = "met" if r["worst_p99"] is not None and r["worst_p99"] < TARGET_P99 else "MISSED"
    print(f"target p99 lateness < {TARGET_P99:.0f} s (messages, every step): {verdict} "
          f"(worst p99 {sec(r['worst_p99'])})")


def ratio(a, b) -> str:
    return f"{a / b:.1f}x" if a is not None and b else "-"


def table(lines: list[tuple]) -> None:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
              .rstrip())


if __name__ == "__main__":
    sys.exit(main())
