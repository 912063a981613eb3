"""Mapping and rules benchmark: the per-event cost of a 20-block mapping and 20 alert rules,
next to the cost of the ingest request itself, measured in the same process and run.

    .venv/bin/python benchmarks/mapping.py [--events N] [--requests M] [--rounds R]

Runs in-process on a scratch SQLite file in a temp directory (removed afterwards), so it
measures Tocsin's code, not the network or gunicorn. See benchmarks/README.md.
"""

import argparse
import json
import logging
import os
import platform
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SEVERITIES = ["critical", "error", "warning", "info"]
DATADOG_LIKE = {
    "id": "7211412334",
    "title": "[Triggered] CPU above 90% on web-1",
    "body": "avg(last_5m):avg:system.cpu.user{host:web-1} > 90",
    "alert_type": "error",
    "priority": "normal",
    "last_updated": "1767225600000",
    "event_type": "query_alert_monitor",
    "host": "web-1",
    "org": {"id": "1234", "name": "Shop"},
    "tags": ["env:prod", "team:payments", "kube_namespace:checkout", "service:web"],
    "alerts": [
        {"labels": {"alertname": "HighCPU", "severity": "critical", "instance": "web-1:9100",
                    "kube_pod": "web-1-abc"},
         "annotations": {"summary": "CPU above 90% on web-1"}, "value": 93.5},
    ],
    "metrics": {"cpu": 93.5, "load": 7.2, "mem": 61},
}


def mapping_with_blocks(count: int) -> dict:
    """A realistic mapping: direct fields, then `count` blocks using every operator."""
    ops = [
        ("alerts.0.labels.severity", "equals", "critical"),
        ("alert_type", "not_equals", "success"),
        ("tags", "contains", "env:prod"),
        ("title", "matches", r"^\[(Triggered|Re-Triggered)\]"),
        ("alerts.0.annotations.summary", "exists", True),
        ("metrics.cpu", "gt", 90),
        ("metrics.mem", "lt", 95),
    ]
    blocks = []
    for index in range(count):
        path, op, value = ops[index % len(ops)]
        blocks.append({
            "if": [{"path": path, "op": op, "value": value},
                   {"path": "org.name", "op": "equals", "value": "Shop"}],
            "then": {"alert_type": {"value": SEVERITIES[index % len(SEVERITIES)]},
                     "summary": {"path": "body"}},
        })
    return {
        "direct": {"message": {"path": "title"}, "entity_id": {"path": "host"},
                   "alert_type": {"path": "alert_type"}, "urgency": {"value": "high"}},
        "conditional": blocks,
    }


def rule_definitions(count: int) -> list[tuple[list, list]]:
    """`count` rules mixing every kind of condition; one looks up the last incident."""
    conditions = [
        [{"field": "alert_type", "op": "equals", "value": "critical"}],
        [{"field": "message", "op": "contains", "value": "CPU"}],
        [{"field": "time_of_day", "op": "between", "value": ["22:00", "06:00"],
          "timezone": "Europe/Berlin"}],
        [{"field": "day_of_week", "op": "in", "value": ["sat", "sun"],
          "timezone": "Europe/Berlin"}],
        [{"path": "alerts.0.labels.instance", "op": "matches", "value": r"^web-\d+"}],
        [{"field": "payload_keys", "op": "contains", "value": "kube"}],
        [{"field": "urgency", "op": "equals", "value": "high"},
         {"path": "metrics.load", "op": "gt", "value": 5}],
    ]
    actions = [
        [{"type": "set_urgency", "value": "low"}],
        [{"type": "add_note", "value": "See the CPU runbook."}],
        [{"type": "set_summary", "value": "night-time alert"}],
        [{"type": "set_alert_type", "value": "warning"}],
    ]
    rules = [(conditions[i % len(conditions)], actions[i % len(actions)]) for i in range(count)]
    rules[-1] = ([{"field": "seconds_since_last_incident", "op": "lt", "value": 300}],
                 [{"type": "add_note", "value": "Flapping."}])
    return rules


def per_call(func, count: int, rounds: int) -> float:
    """Best round's seconds per call: the least disturbed by the rest of the machine."""
    results = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(count):
            func()
        results.append((time.perf_counter() - started) / count)
    return min(results)


def run(args) -> None:
    # Imported here: Django may be set up only once the scratch database is in the
    # environment (main sets it).
    import django

    django.setup()
    # django-q2 logs every enqueued task at INFO; that is noise here.
    logging.getLogger("django-q").setLevel(logging.WARNING)
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    from incidents import lifecycle
    from incidents.models import Service, Team
    from integrations import mapping, processing, rules
    from integrations.models import AlertRule, InboundEvent, Integration

    call_command("migrate", verbosity=0)
    team = Team.objects.create(name="Benchmark")
    service = Service.objects.create(name="Benchmark", team=team)
    config = mapping_with_blocks(20)
    assert not mapping.validate_mapping(config)
    mapped = Integration.objects.create(name="Mapped", kind="generic", service=service,
                                        rate_limit_per_minute=0, mapping=config)
    for index, (conditions, actions) in enumerate(rule_definitions(20)):
        assert not rules.validate_conditions(conditions) and not rules.validate_actions(actions)
        AlertRule.objects.create(integration=mapped, name=f"rule {index}", position=index,
                                 conditions=conditions, actions=actions)
    plain = Integration.objects.create(name="Plain", kind="generic", service=service,
                                       rate_limit_per_minute=0)
    lifecycle.open_incident(service=service, title="earlier", entity_id="web-1")
    specs = rules.saved_rules(mapped)
    now = timezone.now()
    document = DATADOG_LIKE

    def evaluate_only():
        fields = mapping.alert_fields(config, document)
        rules.apply_rules(fields, specs, service_id=service.pk, now=now)

    without_lookup = specs[:-1]

    def evaluate_without_queries():
        fields = mapping.alert_fields(config, document)
        rules.apply_rules(fields, without_lookup, service_id=service.pk, now=now)

    def as_the_worker_does():
        # Load the rules (one query) and evaluate them (one more for the last incident).
        fields = mapping.alert_fields(mapped.mapping, document)
        rules.apply_rules(fields, rules.saved_rules(mapped), service_id=service.pk, now=now)

    # Sanity: what the benchmark measures really maps and matches.
    fields = mapping.alert_fields(config, document)
    audit = rules.apply_rules(fields, specs, service_id=service.pk, now=now)
    matched_blocks = len(fields.extra["mapping"]["matched_blocks"])

    evaluation = per_call(evaluate_only, args.events, args.rounds)
    pure = per_call(evaluate_without_queries, args.events, args.rounds)
    worker_side = per_call(as_the_worker_does, args.events, args.rounds)

    client = Client(HTTP_HOST="localhost")
    body = json.dumps(document)

    def post(integration):
        response = client.post(f"/api/events/{integration.key}/", body,
                               content_type="application/json")
        assert response.status_code == 200, response.content

    plain_body = json.dumps({"message": document["title"], "alert_type": "error",
                                           "entity_id": "web-1", "payload": document})

    def post_plain():
        response = client.post(f"/api/events/{plain.key}/", plain_body,
                               content_type="application/json")
        assert response.status_code == 200, response.content

    request_mapped = per_call(lambda: post(mapped), args.requests, args.rounds)
    request_plain = per_call(post_plain, args.requests, args.rounds)

    def process_all(integration) -> float:
        ids = list(InboundEvent.objects.filter(integration=integration, status="queued")
                   .values_list("pk", flat=True)[: args.requests])
        started = time.perf_counter()
        for event_id in ids:
            assert processing.process_event(event_id) == "completed"
        return (time.perf_counter() - started) / len(ids)

    process_mapped = process_all(mapped)
    process_plain = process_all(plain)

    us = 1e6
    print(f"Tocsin mapping + rules benchmark, {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} "
          f"UTC; Python {platform.python_version()}, {os.cpu_count()} CPU cores; SQLite, "
          f"in-process; best of {args.rounds} rounds")
    print(f"mapping: 20 conditional blocks ({matched_blocks} match this payload); "
          f"rules: 20 ({len(audit)} match)")
    rows = [
        ("mapping + 19 rules, no database query", pure, args.events),
        ("mapping + 20 rules (one last-incident query)", evaluation, args.events),
        ("  + loading the rules, as the worker does", worker_side, args.events),
        ("POST /api/events/<key>/ (mapping on)", request_mapped, args.requests),
        ("POST /api/events/<key>/ (no mapping)", request_plain, args.requests),
        ("process_event, mapping + 20 rules", process_mapped, args.requests),
        ("process_event, no mapping, no rules", process_plain, args.requests),
    ]
    for name, seconds, count in rows:
        print(f"  {name:45} {seconds * us:9.1f} µs/event  ({count} events)")
    print(f"ratio to the request: no-query evaluation {pure / request_mapped:.3f}; "
          f"evaluation {evaluation / request_mapped:.3f}; "
          f"as the worker does {worker_side / request_mapped:.3f}; "
          f"processing with / without: {process_mapped / process_plain:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000, help="evaluations per round")
    parser.add_argument("--requests", type=int, default=300, help="POSTs per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tocsin-mapping-bench-"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "tocsin.settings"
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ.pop("REDIS_URL", None)
    # The settings refuse to load without a real key (DEBUG is off here, as in production).
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    try:
        run(args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
