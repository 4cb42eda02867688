#!/usr/bin/env python3
"""`make bench-overload`, and the overload section of `make bench`: the
bulkhead at the Go original's latencies (payment's validate 5 ms + gateway
20 ms, 10 permits, the 500 ms budget), under two loads that the original's
comparison used:

- closed: 100 loadgen clients, each sending its next order when answered;
- open: orders arriving at twice the capacity, whatever the answers.

Capacity is measured in the same pair just before each run: wrk with as
many connections as permits, straight at payment's `POST /charge`, i.e.
permits ÷ the mean payment call as the caller sees it. Per run: orders/s
answered 201 (goodput) and its share of capacity, refusals (503), p50/p99
of every answer, and the bulkhead's refusals by reason from /metrics.

Environment: OVERLOAD_SECONDS (20), OVERLOAD_ROUNDS (1).
"""

import json
import os
import re

import bench

SECONDS = int(os.environ.get("OVERLOAD_SECONDS", "20"))
ROUNDS = int(os.environ.get("OVERLOAD_ROUNDS", "1"))
PERMITS = 10
PAYMENT = {"PAYMENT_VALIDATE_MS": "5", "PAYMENT_GATEWAY_MS": "20"}
LOADS = {
    "closed": "100 clients, closed model",
    "open": "arrivals at 2 × capacity, open model",
}


def capacity(pair):
    out = bench.sh(
        "wrk", "-t2", f"-c{PERMITS}", "-d5s", "-s", "scripts/wrk/charge.lua",
        f"{pair.payment_url}/charge", capture_output=True,
    ).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def refusals(pair):
    text = bench.get(f"{pair.order_url}/metrics")
    found = re.findall(r'^bulkhead_rejected_total\{reason="(\w+)"\} (\d+)', text, re.M)
    return {reason: int(n) for reason, n in found if int(n)}


def run(load):
    pair = bench.Pair(
        {"OTEL_SDK_DISABLED": "true"}, {"BULKHEAD_MAX": str(PERMITS)}, payment_env=PAYMENT
    )
    try:
        cap = capacity(pair)
        shape = ["-c", "100"] if load == "closed" else ["--rate", f"{2 * cap:.0f}", "-c", "2000"]
        out = bench.sh(
            str(bench.RELEASE / "loadgen"), "-url", f"{pair.order_url}/orders", "--json",
            "-idempotent", "-t", "5s", "--duration", f"{SECONDS}s", *shape, capture_output=True,
        ).stdout
        report = json.loads(out)
        by_reason = refusals(pair)
    finally:
        pair.stop()
    ok = report["status_codes"].get("201", 0)
    result = {
        "load": load,
        "capacity": cap,
        "sent": report["total"],
        "goodput": ok / report["duration_secs"],
        "refused": report["status_codes"].get("503", 0),
        "other": report["total"] - ok - report["status_codes"].get("503", 0),
        "p50_ms": report["latency"]["p50_ms"],
        "p99_ms": report["latency"]["p99_ms"],
        "refusals": by_reason,
    }
    result["of_capacity"] = result["goodput"] / cap
    print(json.dumps({"overload": result}), flush=True)
    return result


def figures():
    return {load: [run(load) for _ in range(ROUNDS)] for load in LOADS}


def table(runs):
    lines = [
        "| load | capacity (orders/s) | goodput (201/s) | ÷ capacity | refused (503) | other | p50 ms | p99 ms | bulkhead refusals by reason |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for load, label in LOADS.items():
        for r in runs[load]:
            reasons = ", ".join(f"{k} {v:,}" for k, v in r["refusals"].items()) or "—"
            lines.append(
                f"| {label} | {r['capacity']:,.0f} | {r['goodput']:,.0f} | {r['of_capacity']:.2f} "
                f"| {r['refused']:,} of {r['sent']:,} | {r['other']:,} | {r['p50_ms']:.0f} "
                f"| {r['p99_ms']:.0f} | {reasons} |"
            )
    return lines


def main():
    bench.ensure_wrk()
    bench.sh("cargo", "build", "--release", "-q", "--bins")
    print("\n".join(table(figures())))


if __name__ == "__main__":
    main()
