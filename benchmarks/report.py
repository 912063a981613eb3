"""The printed summary of benchmarks/ingest.py: one table, then the details per database."""

import datetime
import os
import platform


def fmt(value, unit="", digits=1) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if unit == "ms" else f"{value:.{digits}f}{unit}"


def report(rows: list[dict], args) -> None:
    print(f"\nTocsin ingest benchmark, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPU cores, "
          f"{platform.system()} {platform.machine()}; gunicorn 2 sync workers + qcluster "
          f"(2 workers); {args.requests} POSTs at concurrency {args.concurrency}; "
          f"{args.latency_samples} latency samples at {args.rate}/s")
    header = ("database", "broker", "generic/s", "baseline/s", "ratio",
              "lat p50", "lat p99", "not done")
    lines = [header]
    for row in rows:
        if "error" in row:
            lines.append((row["database"], row["broker"], "error: " + row["error"]))
            continue
        gen, base, lat = row["generic"], row["baseline"], row["latency"]
        lines.append((
            row["database"], row["broker"], fmt(gen["rate"]), fmt(base["rate"]),
            fmt(gen["rate"] / base["rate"] if base["rate"] else None, digits=2),
            fmt(lat["p50"], "ms"), fmt(lat["p99"], "ms"), str(lat["not_completed"]),
        ))
    widths = [max(len(line[i]) for line in lines if i < len(line)) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)))
    for row in rows:
        if "error" in row:
            continue
        print(f"\n{row['database']} ({row['broker']}):")
        for name in ("generic", "baseline"):
            b = row[name]
            print(f"  {name:8}  {b['accepted']}/{b['sent']} accepted in {b['seconds']:.1f} s"
                  f" = {b['rate']:.1f}/s; per request p50 {fmt(b['p50'], 'ms')}"
                  f" p99 {fmt(b['p99'], 'ms')}; other statuses {b['other'] or 'none'}")
        busy = row["generic"]["seconds"] + row["drain_seconds"]
        print(f"  worker    {row['backlog_after_burst']} events still queued when the generic "
              f"burst ended, drained {row['drain_seconds']:.1f} s later: "
              f"{row['generic']['accepted'] / busy:.1f} events/s processed")
        lat = row["latency"]
        print(f"  latency   {lat['completed']}/{lat['samples']} visible with an incident;"
              f" p50 {fmt(lat['p50'], 'ms')} p99 {fmt(lat['p99'], 'ms')}"
              f" max {fmt(lat['max'], 'ms')}; failed {lat['failed']},"
              f" POST errors {lat['post_errors']}; status endpoint agrees on"
              f" {lat['status_endpoint_agrees']}/{lat['completed']}")
        print("  load average before / after: "
              f"{' '.join(f'{x:.2f}' for x in row['load_before'])} / "
              f"{' '.join(f'{x:.2f}' for x in row['load_after'])}")
