"""Delivery benchmark: POST → webhook received latency through the whole pipeline (ingest,
processing, incident, delivery, outbound HTTP) at a fixed rate, against baselines measured
in the same run, on a real gunicorn (2 workers) + qcluster.

    .venv/bin/python benchmarks/delivery.py [--db sqlite|postgres|both] [--rate R]
        [--samples N] [--deadline S]

See benchmarks/README.md. Everything listens on and connects to 127.0.0.1 only (the
webhook's receiver is a threaded http.server in this process); every phase is bounded in
count and time, with a hard deadline per database.
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import (  # noqa: E402
    BenchError,
    ScratchDatabase,
    Stack,
    redis_answers,
    run_per_database,
)
from benchmarks.ingest import (  # noqa: E402
    POLL_EVERY,
    REQUEST_TIMEOUT,
    alert_body,
    drain,
    log,
    paced_senders,
    percentile,
    send,
    within,
)
from benchmarks.report import fmt  # noqa: E402

RECEIVE_TIMEOUT = 30  # seconds after its POST before a sample counts as not received (yet)
WARMUP = 20  # alerts (and direct sink POSTs) before measuring
WARMUP_LIMIT = 60  # seconds for the warm-up alerts to arrive at the sink
SETTLE_LIMIT = 30  # seconds for pending deliveries to finish after the queue drained

# Run with `manage.py shell -c` after the harness's SETUP: a webhook destination pointing at
# the sink, attached to the benchmark service (so every incident records one delivery).
DESTINATION_SETUP = """
from destinations.models import Destination
from incidents.models import Service
destination = Destination.objects.create(
    name="Benchmark sink", kind="webhook", config={{"url": "{url}"}})
Service.objects.get(name="Benchmark").destinations.add(destination)
print("DESTINATION=" + str(destination.pk))
"""


class Sink:
    """The webhook's receiver: records when each request arrived (monotonic and wall
    clock), keyed by ``incident.entity_id`` for ``/hook`` and by the path for ``/direct/…``
    (the benchmark's own POSTs, the baseline for the HTTP hop alone)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.hooks: dict[str, list[dict]] = {}  # entity id -> every arrival for it
        self.direct: dict[str, float] = {}  # direct key -> monotonic arrival
        self.malformed = 0
        self.sample_body = b""
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                arrived, wall = time.monotonic(), time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "11")
                self.end_headers()
                self.wfile.write(b'{"ok":true}')
                sink.record(self.path, self.headers, body, arrived, wall)

            def log_message(self, *args):  # no line per request on stderr
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.1}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def record(self, path: str, headers, body: bytes, arrived: float, wall: float) -> None:
        if path.startswith("/direct/"):
            with self.lock:
                self.direct[path] = arrived
            return
        try:
            data = json.loads(body)
            entity = data["incident"]["entity_id"]
        except (ValueError, KeyError, TypeError):
            with self.lock:
                self.malformed += 1
            return
        with self.lock:
            self.sample_body = self.sample_body or body
            self.hooks.setdefault(entity, []).append({
                "mono": arrived, "wall": wall, "event": data.get("event"),
                "delivery_id": data.get("delivery_id"),
                "header": headers.get("X-Tocsin-Delivery"),
            })

    def first(self, entity: str) -> dict | None:
        with self.lock:
            arrivals = self.hooks.get(entity)
            return arrivals[0] if arrivals else None

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def post_direct(port: int, key: str, body: bytes) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        conn.request("POST", f"/direct/{key}", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def run_alerts(stack: Stack, key: str, sink: Sink, rate: float, samples: int,
               deadline: float, tag: str, direct: bool) -> dict:
    """``samples`` critical alerts, each for a new entity, at a fixed rate; and, half an
    interval after each, one direct POST of a webhook-sized body to the sink. Waits until
    every accepted alert's webhook arrived, or RECEIVE_TIMEOUT after its POST."""
    since = stack.last_event_id()
    started: dict[str, tuple[float, float]] = {}  # entity -> (monotonic, wall) before POST
    traces: dict[str, str] = {}  # trace id -> entity
    visible: dict[str, float] = {}  # entity -> monotonic time seen with an incident
    failed: set[str] = set()
    direct_sent: dict[str, float] = {}  # direct key -> monotonic time before its POST
    post_errors: list[int] = []
    lock = threading.Lock()
    direct_body = sink.sample_body or b"{}"

    def post_alert(conn, i, begin):
        entity = f"{tag}-{i}"
        t0, wall0 = time.monotonic(), time.time()
        status, data = send(conn, "POST", f"/api/events/{key}/", alert_body(i, entity))
        with lock:
            if status == 200 and data:
                started[entity] = (t0, wall0)
                traces[data["trace_id"]] = entity
            else:
                post_errors.append(status)
        if direct:
            pause = begin + (i + 0.5) / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            name = f"/direct/{tag}-{i}"
            t1 = time.monotonic()
            if post_direct(sink.port, f"{tag}-{i}", direct_body):
                with lock:
                    direct_sent[name] = t1

    threads, begin = paced_senders(stack.port, rate, samples, deadline, post_alert)
    stop_at = min(deadline, begin + samples / rate + REQUEST_TIMEOUT + RECEIVE_TIMEOUT)
    while time.monotonic() < stop_at:
        now = time.monotonic()
        for trace, status, has_incident in stack.finished_since(since):
            with lock:
                entity = traces.get(trace)
            if entity is None or entity in visible or entity in failed:
                continue
            if status == "completed" and has_incident:
                visible[entity] = now
            else:
                failed.add(entity)
        with lock:
            sending = any(thread.is_alive() for thread in threads)
            waiting = [e for e in started if sink.first(e) is None and e not in failed]
            unseen = [e for e in started if e not in visible and e not in failed]
        if not sending and not waiting and not unseen:
            break
        if not sending and all(now - started[e][0] > RECEIVE_TIMEOUT for e in waiting + unseen):
            break
        time.sleep(POLL_EVERY)
    for thread in threads:
        thread.join(1)
    return {"started": started, "visible": visible, "failed": failed,
            "post_errors": post_errors, "direct_sent": direct_sent}


def wall_seconds(value) -> float | None:
    """A timestamp column as seconds since the epoch (SQLite gives naive UTC text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.timestamp()


def delivery_rows(stack: Stack, tag: str) -> dict[str, dict]:
    """entity id -> its incident's delivery row(s) and the opening event's timestamps."""
    rows = stack.db.query(
        "SELECT i.entity_id, d.uuid, d.status, d.attempts, d.event, d.created_at, "
        "d.last_attempt_at, d.sent_at, e.received_at, e.processed_at "
        "FROM incidents_incident i "
        "LEFT JOIN destinations_delivery d ON d.incident_id = i.id "
        "LEFT JOIN integrations_alert a ON a.incident_id = i.id AND a.opened_incident "
        "LEFT JOIN integrations_inboundevent e ON e.id = a.inbound_event_id "
        "WHERE i.entity_id LIKE %s", [f"{tag}-%"])
    found: dict[str, dict] = {}
    for entity, uid, status, attempts, event, created, claimed, sent, received, processed \
            in rows:
        entry = found.setdefault(entity, {"deliveries": [], "stored": wall_seconds(received),
                                          "processed": wall_seconds(processed)})
        if uid is not None:
            entry["deliveries"].append({
                "uuid": str(uid).replace("-", ""), "status": status, "attempts": attempts,
                "event": event, "created": wall_seconds(created),
                "claimed": wall_seconds(claimed), "sent": wall_seconds(sent),
            })
    return found


def stats(values: list[float]) -> dict:
    return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "p99": percentile(values, 99), "max": max(values) if values else None}


def analyse(run: dict, sink: Sink, rows: dict[str, dict]) -> dict:
    started, visible = run["started"], run["visible"]
    received, to_visible, ingest, step = [], [], [], []
    stages = {name: [] for name in ("stored", "processed", "claimed", "sent_out")}
    lost, late, duplicates, header_mismatch, row_mismatch = [], [], 0, 0, 0
    for entity, (t0, wall0) in started.items():
        with sink.lock:
            arrivals = list(sink.hooks.get(entity, []))
        if entity in visible:
            to_visible.append(visible[entity] - t0)
        if not arrivals:
            lost.append(entity)
            continue
        first = arrivals[0]
        duplicates += len(arrivals) - 1
        elapsed = first["mono"] - t0
        received.append(elapsed)
        if elapsed > RECEIVE_TIMEOUT:
            late.append(entity)
        if any(a["header"] != a["delivery_id"] for a in arrivals):
            header_mismatch += 1
        row = rows.get(entity)
        deliveries = row["deliveries"] if row else []
        if len(deliveries) != 1 or deliveries[0]["uuid"] != str(first["delivery_id"]).replace(
                "-", ""):
            row_mismatch += 1
            continue
        d = deliveries[0]
        if None in (row["stored"], row["processed"], d["claimed"]):
            continue
        ingest.append(row["processed"] - wall0)
        step.append(first["wall"] - row["processed"])
        stages["stored"].append(row["stored"] - wall0)
        stages["processed"].append(row["processed"] - row["stored"])
        stages["claimed"].append(d["claimed"] - row["processed"])
        stages["sent_out"].append(first["wall"] - d["claimed"])
    direct = [sink.direct[name] - t for name, t in run["direct_sent"].items()
              if name in sink.direct]
    all_rows = [d for row in rows.values() for d in row["deliveries"]]
    return {
        "samples": len(started) + len(run["post_errors"]), "accepted": len(started),
        "post_errors": len(run["post_errors"]), "failed_events": len(run["failed"]),
        "received": stats(received), "ingest": stats(ingest), "visible": stats(to_visible),
        "step": stats(step),
        "direct": stats(direct), "direct_sent": len(run["direct_sent"]),
        "stages": {name: stats(values) for name, values in stages.items()},
        "lost": lost, "late": late, "duplicates": duplicates,
        "header_mismatch": header_mismatch, "row_mismatch": row_mismatch,
        "incidents": len(rows), "rows": len(all_rows),
        "rows_sent_once": sum(1 for d in all_rows if d["status"] == "sent"
                              and d["attempts"] == 1),
        "rows_other": sorted({(d["status"], d["attempts"]) for d in all_rows
                              if d["status"] != "sent" or d["attempts"] != 1}),
        "slowest": sorted(((first["mono"] - started[e][0], e) for e in started
                           if (first := sink.first(e))), reverse=True)[:3],
    }


def wait_deliveries_done(stack: Stack, limit: float) -> int:
    """Pending deliveries left after ``limit`` seconds (0 when all finished in time)."""
    stop = time.monotonic() + limit
    while True:
        pending = stack.db.query(
            "SELECT COUNT(*) FROM destinations_delivery WHERE status = 'pending'")[0][0]
        if pending == 0 or time.monotonic() > stop:
            return pending
        time.sleep(0.2)


def bench_database(vendor: str, args) -> dict:
    deadline = time.monotonic() + args.deadline
    use_redis = vendor == "postgresql" and args.broker != "orm" and redis_answers()
    if args.broker == "redis" and not use_redis:
        raise BenchError("--broker redis: Redis does not answer at 127.0.0.1:6379, or the "
                         "database is SQLite (which always uses the database broker)")
    workdir = Path(tempfile.mkdtemp(prefix=f"tocsin-bench-delivery-{vendor}-"))
    db = ScratchDatabase(vendor, workdir)
    stack = Stack(db, workdir, use_redis)
    # Let the worker send to the sink on 127.0.0.1 (the harness drops TOCSIN_* variables).
    stack.env["TOCSIN_ALLOW_PRIVATE_DESTINATIONS"] = "true"
    row = {"database": vendor, "broker": stack.broker, "load_before": os.getloadavg()}
    tag = f"dl-{os.getpid()}-{int(time.time())}"
    ok = False
    with Sink() as sink:
        try:
            log(f"{vendor}: migrating a scratch database (broker {stack.broker})")
            key = stack.prepare()
            stack.manage("shell", "-c", DESTINATION_SETUP.format(url=sink.url), timeout=60)
            stack.start()
            log(f"{vendor}: gunicorn on {stack.url}, sink on {sink.url}; warming up "
                f"({WARMUP} alerts)")
            warm = run_alerts(stack, key, sink, args.rate, WARMUP,
                              min(deadline, time.monotonic() + WARMUP_LIMIT), f"{tag}-w",
                              direct=False)
            missing = [e for e in warm["started"] if sink.first(e) is None]
            if len(warm["started"]) < WARMUP or missing:
                raise BenchError(f"warm-up: {len(warm['started'])}/{WARMUP} accepted, "
                                 f"{len(missing)} webhooks not received; logs in {workdir}")
            for i in range(WARMUP):
                post_direct(sink.port, f"warm-{i}", sink.sample_body)
            drain(stack, deadline, "warm-up")
            log(f"{vendor}: measuring, {args.samples} alerts at {args.rate}/s")
            run = run_alerts(stack, key, sink, args.rate, args.samples, deadline, f"{tag}-m",
                             direct=True)
            within(deadline, "the measured phase")
            drain(stack, deadline, "the measured phase")
            row["pending_after"] = wait_deliveries_done(
                stack, min(SETTLE_LIMIT, max(0.0, deadline - time.monotonic())))
            stack.check_running()
            row["result"] = analyse(run, sink, delivery_rows(stack, f"{tag}-m"))
            totals = stack.db.query(
                "SELECT status, attempts, COUNT(*) FROM destinations_delivery "
                "GROUP BY status, attempts ORDER BY status, attempts")
            row["all_rows"] = [(status, attempts, count) for status, attempts, count in totals]
            row["sink_malformed"] = sink.malformed
            row["load_after"] = os.getloadavg()
            ok = True
        finally:
            stack.stop()
            row["log_errors"] = log_errors(workdir)
            db.drop()
            if ok:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                print(f"  logs kept in {workdir}", file=sys.stderr)
    return row


def log_errors(workdir: Path) -> int:
    """Tracebacks and ERROR lines gunicorn and qcluster logged (LOG_LEVEL=WARNING)."""
    count = 0
    for name in ("gunicorn.log", "qcluster.log"):
        path = workdir / name
        if path.exists():
            count += sum(1 for line in path.read_text(errors="replace").splitlines()
                         if "Traceback" in line or "ERROR" in line)
    return count


def ms(value) -> str:
    return fmt(value, "ms")


def ratio(a, b) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def table(lines: list[tuple]) -> None:
    """Aligned columns; a shorter line (an error) does not widen them."""
    columns = len(lines[0])
    widths = [max(len(line[i]) for line in lines if len(line) == columns)
              for i in range(columns)]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False))
              .rstrip())


def report(rows: list[dict], args) -> None:
    print(f"\nTocsin delivery benchmark, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M}"
          f" UTC")
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPU cores, "
          f"{platform.system()} {platform.machine()}; gunicorn 2 sync workers + qcluster "
          f"(2 workers); {args.samples} alerts at {args.rate}/s, each opening an incident with "
          f"one webhook destination (a local http.server)")
    lines = [("database", "broker", "received p50", "p99", "ingest p50", "p99",
              "ratio p50", "ratio p99", "step p50", "p99", "lost", "sent/1 attempt")]
    for row in rows:
        if "error" in row:
            lines.append((row["database"], row["broker"], "error: " + row["error"]))
            continue
        r = row["result"]
        rec, base, step = r["received"], r["ingest"], r["step"]
        lines.append((row["database"], row["broker"], ms(rec["p50"]), ms(rec["p99"]),
                      ms(base["p50"]), ms(base["p99"]), ratio(rec["p50"], base["p50"]),
                      ratio(rec["p99"], base["p99"]), ms(step["p50"]), ms(step["p99"]),
                      str(len(r["lost"])), f"{r['rows_sent_once']}/{r['rows']}"))
    print()
    table(lines)
    for row in rows:
        if "error" in row:
            continue
        r = row["result"]
        print(f"\n{row['database']} ({row['broker']}):")
        lines = [("", "n", "p50", "p95", "p99", "max")]
        for label, s in (
            ("POST -> webhook received at sink", r["received"]),
            ("baseline: POST -> event processed (ingest)", r["ingest"]),
            ("  POST -> event stored", r["stages"]["stored"]),
            ("  stored -> event processed", r["stages"]["processed"]),
            ("destination step: processed -> received", r["step"]),
            ("  processed -> delivery claimed", r["stages"]["claimed"]),
            ("  claimed -> received at sink", r["stages"]["sent_out"]),
            ("POST -> incident visible (polled)", r["visible"]),
            ("direct POST -> sink (HTTP hop alone)", r["direct"]),
        ):
            lines.append(("  " + label, str(s["n"]), ms(s["p50"]), ms(s["p95"]), ms(s["p99"]),
                          ms(s["max"])))
        table(lines)
        rec, base = r["received"], r["ingest"]
        print(f"  received / ingest: p50 {ratio(rec['p50'], base['p50'])}, p95 "
              f"{ratio(rec['p95'], base['p95'])}, p99 {ratio(rec['p99'], base['p99'])}"
              " (ratios of the percentiles)")
        print(f"  alerts: {r['accepted']}/{r['samples']} accepted, POST errors "
              f"{r['post_errors']}, events failed {r['failed_events']}; webhooks: "
              f"{rec['n']} received, {len(r['lost'])} lost, {len(r['late'])} after "
              f"{RECEIVE_TIMEOUT} s, {r['duplicates']} duplicates, {r['header_mismatch']} "
              f"with X-Tocsin-Delivery != delivery_id, {r['row_mismatch']} not matching "
              f"exactly one Delivery row; {r['direct_sent']} direct POSTs")
        print(f"  Delivery rows (measured incidents): {r['rows']} for {r['incidents']} "
              f"incidents, {r['rows_sent_once']} sent with 1 attempt, other (status, "
              f"attempts): {r['rows_other'] or 'none'}; whole run: "
              + ", ".join(f"{s}/{a}: {c}" for s, a, c in row["all_rows"])
              + f"; pending after drain: {row['pending_after']}; ERROR/Traceback lines in "
              f"the gunicorn and qcluster logs: {row['log_errors']}")
        if r["lost"]:
            print(f"  lost entity ids: {', '.join(r['lost'][:5])}"
                  + (" …" if len(r["lost"]) > 5 else ""))
        print("  slowest: " + ", ".join(f"{e} {ms(s)}" for s, e in r["slowest"]))
        print("  load average before / after: "
              f"{' '.join(f'{x:.2f}' for x in row['load_before'])} / "
              f"{' '.join(f'{x:.2f}' for x in row['load_after'])}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--rate", type=float, default=10.0, help="alerts per second")
    parser.add_argument("--samples", type=int, default=100, help="alerts measured")
    parser.add_argument("--deadline", type=float, default=300, help="seconds per database")
    parser.add_argument("--broker", choices=["auto", "redis", "orm"], default="auto",
                        help="PostgreSQL's broker: Redis when it answers (auto), or the "
                             "database broker; SQLite always uses the database broker")
    args = parser.parse_args()
    if not (0 < args.rate <= 200 and 0 < args.samples <= 5000 and 0 < args.deadline <= 1800):
        parser.error("rate, samples and deadline must be positive (and at most 200, 5000 "
                     "and 1800)")
    rows = run_per_database(args.db, bench_database, args)
    if rows is None:
        return 130
    report(rows, args)
    failed = any("error" in row or row["result"]["lost"] or row["result"]["rows_other"]
                 for row in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
