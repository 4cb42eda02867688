#!/usr/bin/env python3
"""`make bench-store`, and the PostgreSQL section of `make bench`: keyed
orders in memory and on PostgreSQL, side by side.

Rounds of the floor (examples/bare_proxy.rs: actix-web and awc doing an
order's HTTP work alone), one order-service in memory, one on PostgreSQL
(a database of its own on BENCH_DATABASE_URL's server, by default the
machine's) and one on PostgreSQL with each write in a statement of its
own (the baseline of the shared statements) are interleaved; each run is `wrk` with a new Idempotency-Key per request
(scripts/wrk/keyed-order.lua), payment's latency 0, export off. Per run:
orders/s, and CPU µs per order of order-service, of payment-service and of
every PostgreSQL process (backends, WAL writer, checkpointer: user + system
from /proc while the pool's backends are alive), and the database's commits
per completed order (read once the backends have exited and reported).
Then, once, the production configuration: three replicas on PostgreSQL
behind nginx (scripts/services.sh start-replicas, in a directory of its
own), payment's durable ledger, 10 % of traces exported to bench.py's sink,
as orders/s and as a share of one in-memory process's.

Environment: as scripts/bench.py (SECONDS_EACH, CONNECTIONS, ROUNDS), and
BENCH_DATABASE_URL (a server URL ending in /postgres).
"""

import json
import os
import shutil
import socket
import statistics
import tempfile
import time
import urllib.parse
from pathlib import Path

import bench

ADMIN_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def psql(url, sql):
    return bench.sh("psql", url, "-Atc", sql, capture_output=True).stdout.strip()


def database_url(name):
    parts = urllib.parse.urlsplit(ADMIN_URL)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def postgres_ticks():
    """CPU of every process of the server (user + system, in ticks)."""
    total = 0
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "comm").read_text().strip() == "postgres":
                total += bench.cpu_ticks(proc.name)
        except OSError:
            pass  # gone meanwhile
    return total


def settled(db, sql, want=lambda v: v == "0", within=20):
    """Waits until `sql` answers what `want` accepts; answers it."""
    deadline = time.time() + within
    while True:
        value = psql(ADMIN_URL, sql.replace("$db", db))
        if want(value) or time.time() > deadline:
            return value
        time.sleep(0.1)


BACKENDS = "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db'"
COMMITS = "SELECT xact_commit FROM pg_stat_database WHERE datname = '$db'"


def store_run(label, db=None, extra=None):
    """One wrk run of keyed orders against a fresh pair, in memory or on
    `db`, order-service given `extra` environment."""
    env = {"OTEL_SDK_DISABLED": "true"}
    order_env = ({"DATABASE_URL": database_url(db)} if db else {}) | (extra or {})
    commits = int(settled(db, COMMITS, lambda v: v != "") or 0) if db else 0
    pair = bench.Pair(env, order_env)
    try:
        before, pg_before = pair.cpu(), postgres_ticks()
        load = bench.wrk(f"{pair.order_url}/orders", "keyed-order.lua")
        after, pg_after = pair.cpu(), postgres_ticks()
        completed = bench.completed_orders(pair.order_url)
    finally:
        pair.stop()
    n = max(load["requests"], 1)
    per_order = lambda ticks: ticks * 1e6 / bench.HZ / n  # noqa: E731
    run = {
        "label": label,
        "rps": load["rps"],
        "non2xx": load["non2xx"],
        "order_us": per_order(after[0] - before[0]),
        "payment_us": per_order(after[1] - before[1]),
        "postgres_us": per_order(pg_after - pg_before) if db else 0.0,
        "completed": int(completed),
    }
    if db:
        settled(db, BACKENDS)
        run["commits_per_order"] = (int(settled(db, COMMITS, lambda v: v != "")) - commits) / max(completed, 1)
    print(json.dumps(run), flush=True)
    return run


def floor_run():
    """The floor under order-service's CPU per order: examples/bare_proxy.rs
    (actix-web and awc doing the same HTTP work with nothing of the service
    around it) in front of the same payment-service, the same load."""
    pair = bench.Pair({"OTEL_SDK_DISABLED": "true"}, binary=bench.RELEASE / "examples" / "bare_proxy")
    try:
        before = pair.cpu()
        load = bench.wrk(f"{pair.order_url}/orders", "keyed-order.lua")
        after = pair.cpu()
    finally:
        pair.stop()
    n = max(load["requests"], 1)
    run = {
        "label": "floor",
        "rps": load["rps"],
        "non2xx": load["non2xx"],
        "order_us": (after[0] - before[0]) * 1e6 / bench.HZ / n,
        "payment_us": (after[1] - before[1]) * 1e6 / bench.HZ / n,
    }
    print(json.dumps(run), flush=True)
    return run


def store_figures(rounds):
    """Both stores and the floor, interleaved over `rounds`: {"floor": [...],
    "memory": [...], "postgresql": [...], "alone": [...]}, the last
    PostgreSQL with each write in a statement of its own (the baseline of
    the shared statements)."""
    db = f"bench_store_{os.getpid()}"
    psql(ADMIN_URL, f"CREATE DATABASE {db}")
    runs = {"floor": [], "memory": [], "postgresql": [], "alone": []}
    try:
        # Not measured: on a database just created, every connection's
        # cached plans were made for empty, never-analysed tables (the
        # outcomes' update then scans `orders` whole, each time) until
        # autovacuum's first ANALYZE, a minute or so into a deployment.
        # This run's rounds start where a deployment is after that minute.
        store_run("postgresql", db)
        psql(database_url(db), "ANALYZE")
        for _ in range(rounds):
            runs["floor"].append(floor_run())
            runs["memory"].append(store_run("memory"))
            runs["postgresql"].append(store_run("postgresql", db))
            runs["alone"].append(store_run("alone", db, {"DATABASE_BATCH_MAX": "1", "DATABASE_BATCH_WRITERS": "16"}))
    finally:
        psql(ADMIN_URL, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    return runs


def free_ports(n):
    """A port p with p+1..p+n free too (the replicas' ports follow a base)."""
    while True:
        base = bench.free_port()
        try:
            for offset in range(1, n + 1):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue


def production_run(sink, replicas=3):
    """The production configuration: `replicas` order-services on PostgreSQL
    behind nginx (as `make run-replicas` starts them), payment's durable
    ledger, 10 % of traces exported to the sink; keyed orders through nginx."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-production-"))
    db = f"bench_production_{os.getpid()}"
    psql(ADMIN_URL, f"CREATE DATABASE {db}")
    order_port = bench.free_port()
    env = {
        **os.environ,
        "RUN_DIR": str(tmp / "run"),
        "LOG_DIR": str(tmp / "logs"),
        "REPLICAS": str(replicas),
        "REPLICA_BASE_PORT": str(free_ports(replicas)),
        "ORDER_PORT": str(order_port),
        "PAYMENT_PORT": str(bench.free_port()),
        "DATABASE_URL": database_url(db),
        "ADMIN_TOKEN": bench.ADMIN,
        "PAYMENT_API_KEY": bench.API_KEY,
        "PAYMENT_VALIDATE_MS": "0",
        "PAYMENT_GATEWAY_MS": "0",
        "BULKHEAD_MAX": "64",
        "RUST_LOG": "warn",
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink.grpc,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.1",
    }
    try:
        bench.sh("scripts/services.sh", "start-replicas", env=env, capture_output=True)
        # Past the plans made for empty tables, as in store_figures.
        bench.wrk(f"http://127.0.0.1:{order_port}/orders", "keyed-order.lua")
        psql(database_url(db), "ANALYZE")
        load = bench.wrk(f"http://127.0.0.1:{order_port}/orders", "keyed-order.lua")
    finally:
        bench.sh("scripts/services.sh", "stop", env=env, capture_output=True)
        psql(ADMIN_URL, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        shutil.rmtree(tmp, ignore_errors=True)
    run = {"label": "production", "replicas": replicas, "rps": load["rps"], "non2xx": load["non2xx"]}
    print(json.dumps(run), flush=True)
    return run


def table(runs, production=None):
    """The section's table, as markdown lines; with the production
    configuration's line when it was measured."""
    med = lambda kind, key: statistics.median(r[key] for r in runs[kind])  # noqa: E731
    mem = med("memory", "rps")

    def row(kind, name):
        per_round = ", ".join(f"{p['rps'] / m['rps']:.2f}" for p, m in zip(runs[kind], runs["memory"]))
        return (
            f"| {name} | {med(kind, 'rps'):,.0f} | {med(kind, 'rps') / mem:.2f} | {per_round} "
            f"| {med(kind, 'order_us'):.0f} | {med(kind, 'payment_us'):.0f} "
            f"| {med(kind, 'postgres_us'):.0f} | {med(kind, 'commits_per_order'):.2f} |"
        )

    return [
        "| store | orders/s | ÷ memory | per round | CPU µs/order: order-service | payment-service | PostgreSQL (all processes) | commits per order |",
        "|---|---|---|---|---|---|---|---|",
        f"| floor: actix-web and awc alone (`examples/bare_proxy.rs`) | {med('floor', 'rps'):,.0f} | "
        f"{med('floor', 'rps') / mem:.2f} | — | {med('floor', 'order_us'):.0f} | {med('floor', 'payment_us'):.0f} | — | — |",
        f"| memory | {mem:,.0f} | — | — | {med('memory', 'order_us'):.0f} | {med('memory', 'payment_us'):.0f} | — | — |",
        row("postgresql", "PostgreSQL"),
        row("alone", "PostgreSQL, each write alone (`DATABASE_BATCH_MAX=1`, 16 writers: as before the batching)"),
    ] + ([
        "",
        f"**The production configuration** ({production['replicas']} replicas behind nginx on PostgreSQL, "
        "payment's durable ledger, 10 % of traces exported, keyed orders through nginx, one run): "
        f"{production['rps']:,.0f} orders/s, **{production['rps'] / mem:.2f}** of one in-memory "
        "process with export off.",
    ] if production else [])


def main():
    bench.ensure_wrk()
    bench.sh("cargo", "build", "--release", "-q", "--bins")
    bench.build_examples()
    runs = store_figures(bench.ROUNDS)
    sink = bench.Sink()
    try:
        production = production_run(sink)
    finally:
        sink.stop()
    print("\n".join(table(runs, production)))


if __name__ == "__main__":
    main()
