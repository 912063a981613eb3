"""Ingest benchmark: accepted requests/s of the generic webhook against a bare-INSERT
ceiling, and POST → incident-visible latency, on a real gunicorn (2 workers) + qcluster.

    .venv/bin/python benchmarks/ingest.py [--db sqlite|postgres|both] [--requests N]
        [--concurrency C] [--rate R] [--latency-samples M]

See benchmarks/README.md. Every request goes to 127.0.0.1; every phase is bounded in count
and time, with a hard deadline per database.
"""

import argparse
import http.client
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import (  # noqa: E402
    BenchError,
    ScratchDatabase,
    Stack,
    redis_answers,
    run_per_database,
)
from benchmarks.report import report  # noqa: E402

HEADERS = {"Content-Type": "application/json"}
REQUEST_TIMEOUT = 30  # seconds, per HTTP request
DRAIN_LIMIT = 240  # seconds to wait for the queue to empty between phases
LATENCY_TIMEOUT = 30  # seconds after its POST before a latency sample counts as not completed
POLL_EVERY = 0.02  # seconds between database polls while measuring latency
WARMUP = 40  # requests per endpoint before measuring, to open connections and fill caches
GROUPED_ENTITIES = 50  # throughput alerts are spread over this many entities (incidents)
SETTLE = 1.0  # seconds of quiet after the queue drains, before the next phase


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def alert_body(i: int, entity: str, alert_type: str = "critical") -> bytes:
    return json.dumps({
        "message": f"Benchmark: CPU above 90% on {entity}", "summary": "load test",
        "alert_type": alert_type, "entity_id": entity,
        "payload": {"host": entity, "value": 93.5, "seq": i},
    }).encode()


def send(conn: http.client.HTTPConnection, method: str, path: str, body=None):
    """(status, parsed JSON or None); status is 0 on a connection error or timeout."""
    try:
        conn.request(method, path, body, HEADERS if body else {})
        response = conn.getresponse()
        data = response.read()
    except (OSError, http.client.HTTPException):
        conn.close()
        return 0, None
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, None


def burst(port: int, path: str, total: int, concurrency: int, deadline: float,
          tag: str) -> dict:
    """``total`` POSTs from ``concurrency`` client threads, each on its own connection."""
    lock = threading.Lock()
    issued = 0
    statuses: Counter = Counter()
    durations: list[float] = []

    def client():
        nonlocal issued
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
        try:
            while time.monotonic() < deadline:
                with lock:
                    if issued >= total:
                        return
                    issued += 1
                    i = issued
                body = alert_body(i, f"{tag}-{i % GROUPED_ENTITIES}")
                start = time.perf_counter()
                status, _ = send(conn, "POST", path, body)
                elapsed = time.perf_counter() - start
                with lock:
                    statuses[status] += 1
                    durations.append(elapsed)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + REQUEST_TIMEOUT)
    seconds = time.perf_counter() - start
    return {
        "sent": sum(statuses.values()), "accepted": statuses[200], "seconds": seconds,
        "rate": statuses[200] / seconds if seconds else 0.0,
        "other": {str(k): v for k, v in statuses.items() if k != 200},
        "p50": percentile(durations, 50), "p99": percentile(durations, 99),
    }


def paced_senders(port: int, rate: float, samples: int, deadline: float, each):
    """Call ``each(conn, i, begin)`` for i in 0…samples-1 at ``rate`` per second from
    ``begin``, spread over enough threads (each with its own connection to ``port``) that a
    slow request does not hold the next one back. Returns the started threads and begin."""
    begin = time.monotonic() + 0.2
    senders = max(1, min(samples, math.ceil(rate), 64))  # about a second of slack each

    def sender(first: int):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
        for i in range(first, samples, senders):
            pause = begin + i / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            if time.monotonic() > deadline:
                break
            each(conn, i, begin)
        conn.close()

    threads = [threading.Thread(target=sender, args=(k,), daemon=True) for k in range(senders)]
    for thread in threads:
        thread.start()
    return threads, begin


def latency(stack: Stack, key: str, rate: float, samples: int, deadline: float) -> dict:
    """Critical alerts, each for a new entity, at a fixed rate; time from POST start until
    the database shows the event completed with an incident (polled every POLL_EVERY)."""
    since = stack.last_event_id()
    started: dict[str, float] = {}  # trace id -> monotonic time its POST started
    visible: dict[str, float] = {}  # trace id -> monotonic time it was seen with an incident
    failed: set[str] = set()
    post_errors: list[int] = []
    lock = threading.Lock()
    tag = f"lat-{os.getpid()}-{int(time.time())}"

    def post_alert(conn, i, begin):
        t0 = time.monotonic()
        status, data = send(conn, "POST", f"/api/events/{key}/", alert_body(i, f"{tag}-{i}"))
        with lock:
            if status == 200 and data:
                started[data["trace_id"]] = t0
            else:
                post_errors.append(status)

    threads, begin = paced_senders(stack.port, rate, samples, deadline, post_alert)
    stop_at = min(deadline, begin + samples / rate + REQUEST_TIMEOUT + LATENCY_TIMEOUT)
    while time.monotonic() < stop_at:
        now = time.monotonic()
        for trace, status, has_incident in stack.finished_since(since):
            if trace in visible or trace in failed:
                continue
            if status == "completed" and has_incident:
                visible[trace] = now
            else:
                failed.add(trace)
        with lock:
            sending = any(thread.is_alive() for thread in threads)
            waiting = [t for t in started if t not in visible and t not in failed]
            if not sending and not waiting:
                break
            if not sending and all(now - started[t] > LATENCY_TIMEOUT for t in waiting):
                break
        time.sleep(POLL_EVERY)
    seconds = [visible[t] - started[t] for t in started if t in visible]
    # Cross-check a finished sample against the public status endpoint, once each.
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=REQUEST_TIMEOUT)
    agree = sum(
        1 for trace in [t for t in started if t in visible]
        if (reply := send(conn, "GET", f"/api/alert/status/{trace}/")[1])
        and reply.get("status") == "completed" and reply.get("incident")
    )
    conn.close()
    return {
        "samples": samples, "accepted": len(started), "completed": len(seconds),
        "not_completed": samples - len(seconds), "failed": len(failed & started.keys()),
        "post_errors": len(post_errors), "status_endpoint_agrees": agree,
        "p50": percentile(seconds, 50), "p99": percentile(seconds, 99),
        "max": max(seconds) if seconds else None,
    }


def within(deadline: float, what: str) -> None:
    if time.monotonic() > deadline:
        raise BenchError(f"the deadline passed during {what}; figures would be partial")


def drain(stack: Stack, deadline: float, what: str) -> float:
    """Wait until nothing is queued, then a moment more for the worker's result saving."""
    within(deadline, what)
    waited = stack.wait_drained(min(DRAIN_LIMIT, max(0.0, deadline - time.monotonic())))
    if waited is None:
        raise BenchError(f"the queue did not drain after {what} ({stack.backlog()} events left)")
    time.sleep(SETTLE)
    return waited


def log(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def bench_database(vendor: str, args) -> dict:
    deadline = time.monotonic() + args.deadline
    workdir = Path(tempfile.mkdtemp(prefix=f"tocsin-bench-{vendor}-"))
    use_redis = vendor == "postgresql" and redis_answers()
    db = ScratchDatabase(vendor, workdir)
    stack = Stack(db, workdir, use_redis)
    row = {"database": vendor, "broker": stack.broker, "load_before": os.getloadavg()}
    ok = False
    try:
        log(f"{vendor}: migrating a scratch database (broker {stack.broker})")
        key = stack.prepare()
        stack.start()
        generic, baseline = f"/api/events/{key}/", "/bench/baseline/"
        log(f"{vendor}: gunicorn on {stack.url}, warming up")
        for path in (baseline, generic):
            burst(stack.port, path, WARMUP, min(4, args.concurrency), deadline, "warm")
        drain(stack, deadline, "warm-up")
        log(f"{vendor}: baseline, {args.requests} POSTs at concurrency {args.concurrency}")
        row["baseline"] = burst(stack.port, baseline, args.requests, args.concurrency,
                                deadline, "base")
        log(f"{vendor}: generic, {args.requests} POSTs at concurrency {args.concurrency}")
        row["generic"] = burst(stack.port, generic, args.requests, args.concurrency,
                               deadline, "tp")
        row["backlog_after_burst"] = stack.backlog()
        row["drain_seconds"] = drain(stack, deadline, "the generic burst")
        stack.check_running()
        log(f"{vendor}: latency, {args.latency_samples} alerts at {args.rate}/s")
        row["latency"] = latency(stack, key, args.rate, args.latency_samples, deadline)
        within(deadline, "the latency phase")
        drain(stack, deadline, "the latency phase")
        row["load_after"] = os.getloadavg()
        ok = True
    finally:
        stack.stop()
        db.drop()
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"  logs kept in {workdir}", file=sys.stderr)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--requests", type=int, default=2000, help="POSTs per endpoint")
    parser.add_argument("--concurrency", type=int, default=16, help="client connections")
    parser.add_argument("--rate", type=float, default=20.0, help="latency alerts per second")
    parser.add_argument("--latency-samples", type=int, default=100)
    parser.add_argument("--deadline", type=float, default=600, help="seconds per database")
    args = parser.parse_args()
    if not (0 < args.requests <= 100_000 and 0 < args.concurrency <= 256
            and 0 < args.rate <= 1000 and 0 < args.latency_samples <= 10_000
            and 0 < args.deadline <= 1800):
        parser.error("requests, concurrency, rate, latency samples and deadline must be "
                     "positive (and at most 100000, 256, 1000, 10000 and 1800)")
    rows = run_per_database(args.db, bench_database, args)
    if rows is None:
        return 130
    report(rows, args)
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
