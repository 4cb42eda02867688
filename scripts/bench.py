#!/usr/bin/env python3
"""`make bench`: every figure of docs/benchmarks.md, from one run.

Each figure is a ratio of two measurements taken side by side in this run
on this machine, so that a slower or busier machine moves both sides
alike. The load is wrk (closed model, 2 threads, CONNECTIONS connections,
SECONDS_EACH seconds a run); payment-service's simulated latency is 0, so
what is measured is the services' own cost. The configurations that are
compared are interleaved over ROUNDS rounds and the medians reported.

CPU per request is read from /proc/<pid>/stat (user + system) before and
after each run. With traces exported, the spans received by the in-run
OTLP sink are checked against orders x spans per order: a faster figure
that loses spans is not a result.

Environment: SECONDS_EACH (10), CONNECTIONS (32), ROUNDS (3),
LEDGER_ROUNDS (5: the ledger's figure moves most from run to run),
BENCH_OUT (docs/benchmarks.md).
"""

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.chdir(ROOT)
SECONDS_EACH = int(os.environ.get("SECONDS_EACH", "10"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "32"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
LEDGER_ROUNDS = int(os.environ.get("LEDGER_ROUNDS", "5"))
OUT = Path(os.environ.get("BENCH_OUT", "docs/benchmarks.md"))
HZ = os.sysconf("SC_CLK_TCK")
RELEASE = ROOT / "target" / "release"
# Spans of one order without a key (docs/contract.md §8): order-service's, payment's.
ORDER_SPANS, CHARGE_SPANS = 8, 4
ADMIN = "bench-admin-token"
API_KEY = "bench-payment-key"  # scripts/wrk/charge.lua sends it too


def sh(*args, **kw):
    return subprocess.run(args, check=True, text=True, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ticks(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


# The client side of https URLs (bench_tls): trusts the run's CA and
# presents the operator's certificate, as `make run-tls`'s curl does.
TLS_CONTEXT = None


def get(url, headers=None, method="GET", body=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    context = TLS_CONTEXT if url.startswith("https:") else None
    with urllib.request.urlopen(req, timeout=5, context=context) as res:
        return res.read().decode()


def wait_ready(url):
    for _ in range(200):
        try:
            get(url)
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{url} never answered")


def completed_orders(base):
    """Orders completed, once the count stops moving: wrk hangs up on the
    orders in flight when its time is up, and their flows still finish."""
    completed, previous = -1, -2
    while completed != previous:
        time.sleep(0.2)
        previous, completed = completed, metric(base, 'orders_total{status="completed"}')
    return completed


def metric(base, series):
    """A counter or gauge of a service's /metrics (summed over its labels)."""
    total = 0.0
    for line in get(f"{base}/metrics").splitlines():
        if line.startswith(series) and line[len(series)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


class Sink:
    """The in-run OTLP sink (the tests' receiver, counting)."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [RELEASE / "examples" / "otlp_sink"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.grpc = self.proc.stdout.readline().strip()
        self.http = self.proc.stdout.readline().strip()
        self.count = 0
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self):
        for line in self.proc.stderr:
            found = re.search(r"spans received: (\d+)", line)
            if found:
                self.count = int(found.group(1))

    def settled(self, expected=None, quiet=1.0, within=30):
        """The count once it reached `expected`, or stopped moving for `quiet` s."""
        deadline = time.time() + within
        last, since = self.count, time.time()
        while time.time() < deadline:
            if expected is not None and self.count >= expected:
                break
            if self.count != last:
                last, since = self.count, time.time()
            elif time.time() - since >= quiet:
                break
            time.sleep(0.05)
        return self.count

    def stop(self):
        self.proc.kill()


class Pair:
    """payment-service and order-service, on ports of their own."""

    def __init__(self, env, order_env=None, binary=RELEASE / "order-service", payment_env=None, tls=None):
        """`tls`: a directory of scripts/tls-certs.sh's certificates: both
        services on HTTPS, order → payment over mutual TLS."""
        scheme = "https" if tls else "http"
        common = {
            **os.environ,
            "BIND_ADDR": "127.0.0.1",
            "RUST_LOG": "warn",
            "ADMIN_TOKEN": ADMIN,
            "PAYMENT_API_KEY": API_KEY,
            **env,
        }
        self.pay_port, self.ord_port = free_port(), free_port()
        payment_tls, order_tls = {}, {}
        if tls:
            payment_tls = {"TLS_CERT": f"{tls}/payment.pem", "TLS_KEY": f"{tls}/payment-key.pem", "CLIENT_CA": f"{tls}/ca.pem"}
            order_tls = {
                "TLS_CERT": f"{tls}/order.pem",
                "TLS_KEY": f"{tls}/order-key.pem",
                "PAYMENT_CA": f"{tls}/ca.pem",
                "PAYMENT_CLIENT_CERT": f"{tls}/order-client.pem",
                "PAYMENT_CLIENT_KEY": f"{tls}/order-client-key.pem",
            }
        self.payment = subprocess.Popen(
            [RELEASE / "payment-service"],
            env={
                **common,
                "PORT": str(self.pay_port),
                "PAYMENT_VALIDATE_MS": "0",
                "PAYMENT_GATEWAY_MS": "0",
                **payment_tls,
                **(payment_env or {}),
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.order = subprocess.Popen(
            [binary],
            env={
                **common,
                "PORT": str(self.ord_port),
                "BULKHEAD_MAX": "64",
                "PAYMENT_SERVICE_URL": f"{scheme}://127.0.0.1:{self.pay_port}",
                **order_tls,
                **(order_env or {}),
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.order_url = f"{scheme}://127.0.0.1:{self.ord_port}"
        self.payment_url = f"{scheme}://127.0.0.1:{self.pay_port}"
        wait_ready(f"{self.payment_url}/health")
        wait_ready(f"{self.order_url}/ready")

    def cpu(self):
        return cpu_ticks(self.order.pid), cpu_ticks(self.payment.pid)

    def stop(self):
        """SIGTERM: each service flushes its last spans before it exits."""
        for proc in (self.order, self.payment):
            proc.send_signal(signal.SIGTERM)
        for proc in (self.order, self.payment):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def wrk(url, script=None, latency=False):
    args = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS_EACH}s"]
    if script:
        args += ["-s", f"scripts/wrk/{script}"]
    if latency:
        args.append("--latency")
    out = sh(*args, url, capture_output=True).stdout
    result = {
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "non2xx": int((re.search(r"Non-2xx or 3xx responses: (\d+)", out) or [0, 0])[1]),
    }
    if latency:
        result["p99_ms"] = to_ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1))
    return result


def to_ms(text):
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def orders_run(label, env, sink=None, spans_per_order=0, tls=None):
    """One wrk run of POST /orders against a fresh pair."""
    pair = Pair(env, tls=tls)
    try:
        before = pair.cpu()
        start_spans = sink.count if sink else 0
        sink_before = cpu_ticks(sink.proc.pid) if sink else 0
        load = wrk(f"{pair.order_url}/orders", "order.lua")
        after = pair.cpu()
        sink_after = cpu_ticks(sink.proc.pid) if sink else 0
        completed = completed_orders(pair.order_url)
        dropped = metric(pair.order_url, "otel_spans_dropped_total") + metric(
            pair.payment_url, "otel_spans_dropped_total"
        )
    finally:
        pair.stop()
    n = max(load["requests"], 1)
    run = {
        "label": label,
        "rps": load["rps"],
        "non2xx": load["non2xx"],
        "order_us": (after[0] - before[0]) * 1e6 / HZ / n,
        "payment_us": (after[1] - before[1]) * 1e6 / HZ / n,
        "completed": int(completed),
    }
    if sink:
        # The services flushed on SIGTERM: what they exported has arrived.
        expected = start_spans + int(completed) * spans_per_order if spans_per_order else None
        received = sink.settled(expected, quiet=1.0)
        run["spans"] = received - start_spans
        run["spans_expected"] = int(completed) * spans_per_order if spans_per_order else None
        run["dropped"] = int(dropped)
        run["sink_us"] = (sink_after - sink_before) * 1e6 / HZ / n
    print(json.dumps(run), flush=True)
    return run


def median(runs, key):
    return statistics.median(r[key] for r in runs)


def ensure_wrk():
    if not shutil.which("wrk"):
        print("installing wrk")
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        sh(*sudo, "apt-get", "install", "-y", "-qq", "wrk")


def build_examples():
    """The OTLP sink, and the bare proxy that measures the floor."""
    for example in ("otlp_sink", "bare_proxy"):
        sh("cargo", "build", "--release", "-q", "-p", "order-service", "--example", example)


def main():
    import bench_clients
    import bench_overload
    import bench_store
    import bench_tls

    ensure_wrk()
    sh("cargo", "build", "--release", "-q", "--bins")
    build_examples()
    sink = Sink()
    per_order = ORDER_SPANS + CHARGE_SPANS
    configs = {
        "off": ({"OTEL_SDK_DISABLED": "true"}, None, 0),
        "grpc": ({"OTEL_EXPORTER_OTLP_ENDPOINT": sink.grpc}, sink, per_order),
        "http": (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.http, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
            sink,
            per_order,
        ),
        "tenth": (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": sink.grpc,
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0.1",
            },
            sink,
            0,
        ),
    }
    runs = {name: [] for name in configs}
    try:
        for _ in range(ROUNDS):
            for name, (env, s, spans) in configs.items():
                runs[name].append(orders_run(name, env, s, spans))
        charges, p5 = direct_charges(), refusals()
        production = bench_store.production_run(sink)
    finally:
        sink.stop()
    ledger = ledger_group_commit()
    stores = bench_store.store_figures(ROUNDS)
    actors = pipeline()
    loadgen = loadgen_vs_wrk()
    overload = bench_overload.figures()
    tls = bench_tls.figures()
    clients = bench_clients.figures()
    stores = (stores, bench_store.table(stores, production), production)
    write(runs, charges, p5, ledger, stores, actors, loadgen, overload, tls, clients)


LEDGER_KINDS = {
    "memory": {},
    "durable": {"PAYMENT_LEDGER_PATH": "{tmp}/ledger.jsonl"},
    # The same without the commit delay: what the delay buys, in this run.
    "durable, no delay": {"PAYMENT_LEDGER_PATH": "{tmp}/ledger.jsonl", "PAYMENT_LEDGER_COMMIT_DELAY_US": "0"},
}


def ledger_group_commit():
    """POST /charge alone against an in-memory ledger, a durable one
    (PAYMENT_LEDGER_PATH) and a durable one without the commit delay, side
    by side, LEDGER_ROUNDS times each, interleaved: charges/s, payment's
    CPU per charge and, for the durable runs, the writer's syncs and the
    charges they covered."""
    import tempfile
    runs = {kind: [] for kind in LEDGER_KINDS}
    for _ in range(LEDGER_ROUNDS):
        for kind, extra in LEDGER_KINDS.items():
            with tempfile.TemporaryDirectory() as tmp:
                env = {"OTEL_SDK_DISABLED": "true", **{k: v.format(tmp=tmp) for k, v in extra.items()}}
                pair = Pair(env)
                try:
                    before = pair.cpu()[1]
                    load = wrk(f"{pair.payment_url}/charge", "charge.lua")
                    after = pair.cpu()[1]
                    syncs = metric(pair.payment_url, "payment_ledger_syncs")
                    synced = metric(pair.payment_url, "payment_ledger_synced_charges")
                finally:
                    pair.stop()
            run = {
                "kind": kind,
                "rps": load["rps"],
                "non2xx": load["non2xx"],
                "payment_us": (after - before) * 1e6 / HZ / max(load["requests"], 1),
            }
            if kind != "memory":
                run |= {"syncs": syncs, "synced": synced}
            runs[kind].append(run)
            print(json.dumps({"ledger": run}), flush=True)
    return runs


def direct_charges():
    """payment-service's POST /charge alone, export off (P1's denominator)."""
    pair = Pair({"OTEL_SDK_DISABLED": "true"})
    try:
        before = pair.cpu()
        load = wrk(f"{pair.payment_url}/charge", "charge.lua")
        after = pair.cpu()
    finally:
        pair.stop()
    run = {
        "rps": load["rps"],
        "non2xx": load["non2xx"],
        "payment_us": (after[1] - before[1]) * 1e6 / HZ / max(load["requests"], 1),
    }
    print(json.dumps({"charges": run}), flush=True)
    return run


def refusals():
    """P5: p99 of a 503 with the breaker forced open, beside p99 of /health."""
    pair = Pair({"OTEL_SDK_DISABLED": "true"})
    try:
        get(
            f"{pair.order_url}/admin/breaker",
            headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
            method="PUT",
            body=b'{"mode":"forced_open"}',
        )
        refused = wrk(f"{pair.order_url}/orders", "order.lua", latency=True)
        health = wrk(f"{pair.order_url}/health", latency=True)
    finally:
        pair.stop()
    run = {"refused": refused, "health": health}
    print(json.dumps({"p5": run}), flush=True)
    return run


def pipeline():
    out = sh("cargo", "bench", "-q", "-p", "order-service", "--bench", "pipeline", capture_output=True).stdout
    print(out, flush=True)
    return out.strip()


def loadgen_vs_wrk():
    """The median ratios by (target, connections), and the script's output."""
    env = {**os.environ, "CONNECTIONS": "32 50", "ORDER_CONNECTIONS": "32", "ROUNDS": "5"}
    out = sh("scripts/bench-loadgen.sh", capture_output=True, env=env).stdout
    print(out, flush=True)
    ratios = re.findall(r"ratio:\s+([\d.]+) \(loadgen / wrk, ([^,]+), (\d+) connections", out)
    return {(target, int(c)): float(r) for r, target, c in ratios}, out.strip()


def write(runs, charges, p5, ledger, stores, actors, loadgen, overload, tls, clients):
    import bench_clients
    import bench_overload
    import bench_tls

    off, grpc, http, tenth = (runs[k] for k in ("off", "grpc", "http", "tenth"))
    m = {k: {f: median(v, f) for f in ("rps", "order_us", "payment_us")} for k, v in runs.items()}
    sink_us = {k: median(runs[k], "sink_us") for k in ("grpc", "http", "tenth")}
    lost = [r for r in grpc + http if r["spans"] != r["spans_expected"] or r["dropped"]]
    p5_ratio = p5["refused"]["p99_ms"] / p5["health"]["p99_ms"]
    p1 = m["off"]["rps"] / charges["rps"]
    mem_rps = statistics.median(r["rps"] for r in ledger["memory"])
    durable_ratio = statistics.median(r["rps"] for r in ledger["durable"]) / mem_rps
    store_ratio = median(stores[0]["postgresql"], "rps") / median(stores[0]["memory"], "rps")
    closed, opened = overload["closed"][0], overload["open"][0]

    def ledger_row(kind):
        rs = ledger[kind]
        rps = statistics.median(r["rps"] for r in rs)
        cpu = statistics.median(r["payment_us"] for r in rs)
        if kind == "memory":
            return f"| {kind} | {rps:,.0f} | — | — | {cpu:.1f} | — | — |"
        per_round = ", ".join(f"{r['rps'] / m_['rps']:.2f}" for r, m_ in zip(rs, ledger["memory"]))
        batch = sum(r["synced"] for r in rs) / max(sum(r["syncs"] for r in rs), 1)
        syncs = statistics.median(r["syncs"] / SECONDS_EACH for r in rs)
        return f"| {kind} | {rps:,.0f} | {rps / mem_rps:.2f} | {per_round} | {cpu:.1f} | {batch:.1f} | {syncs:,.0f} |"

    ratio = lambda k: m[k]["rps"] / m["off"]["rps"]  # noqa: E731
    per_round = lambda k: ", ".join(f"{r['rps'] / o['rps']:.2f}" for r, o in zip(runs[k], off))  # noqa: E731
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} cores. Every figure is a ratio of two measurements taken side by side "
        "in this run, so it travels between machines better than the absolute numbers; the "
        "absolute numbers are here to read the ratios by.",
        "",
        f"Load: `wrk -t2 -c{CONNECTIONS} -d{SECONDS_EACH}s` (closed model), `POST /orders` without "
        "an `Idempotency-Key` (every request a new order and a new charge), payment-service's "
        "simulated latency 0, bulkhead 64, in-memory stores, `RUST_LOG=warn`. "
        f"The four trace configurations are interleaved over {ROUNDS} rounds; medians shown. "
        "wrk, the services and the OTLP sink share the machine's cores.",
        "",
        "## Traces: what exporting every span costs",
        "",
        "| configuration | orders/s | ÷ export off | per round | CPU µs per order, order-service | CPU µs per charge, payment-service |",
        "|---|---|---|---|---|---|",
    ]
    names = {
        "off": "export off (`OTEL_SDK_DISABLED=true`)",
        "grpc": "every trace exported, OTLP/gRPC",
        "http": "every trace exported, OTLP/HTTP (`http/protobuf`)",
        "tenth": "10 % of traces (`parentbased_traceidratio`, 0.1)",
    }
    for k in ("off", "grpc", "http", "tenth"):
        lines.append(
            f"| {names[k]} | {m[k]['rps']:,.0f} | {ratio(k):.2f} | {per_round(k) if k != 'off' else '—'} "
            f"| {m[k]['order_us']:.0f} | {m[k]['payment_us']:.0f} |"
        )
    spans = sum(r["spans"] for r in grpc + http)
    expected = sum(r["spans_expected"] for r in grpc + http)
    # What one exported span costs each service, and what an order of an
    # unsampled trace costs beyond export off (the 10 % run less a tenth of
    # the exported spans' cost).
    per_span = {svc: (m["grpc"][f"{svc}_us"] - m["off"][f"{svc}_us"]) / n
                for svc, n in (("order", ORDER_SPANS), ("payment", CHARGE_SPANS))}
    unsampled = {svc: m["tenth"][f"{svc}_us"] - m["off"][f"{svc}_us"]
                 - 0.1 * (m["grpc"][f"{svc}_us"] - m["off"][f"{svc}_us"]) for svc in ("order", "payment")}
    lines += [
        "",
        f"**Per span** (OTLP/gRPC less export off, CPU µs): {per_span['order']:.1f} in order-service "
        f"({ORDER_SPANS} spans an order), {per_span['payment']:.1f} in payment-service ({CHARGE_SPANS} a charge), "
        "export threads included. **An unsampled order** (10 % less a tenth of the exported cost) costs "
        f"{unsampled['order']:.1f} µs in order-service and {unsampled['payment']:.1f} in payment-service "
        "beyond export off.",
        "",
        f"**No span lost.** In the exported runs the sink received {spans:,} spans for "
        f"{expected:,} expected (orders completed × {ORDER_SPANS + CHARGE_SPANS} spans per order); "
        + ("every run matched exactly, and `otel_spans_dropped_total` stayed 0."
           if not lost else f"**{len(lost)} run(s) did not match**: {json.dumps(lost)}."),
        "",
        "The sink (`examples/otlp_sink.rs`) reads each request down to its spans and counts them without "
        "building them, on the same cores: "
        f"{sink_us['grpc']:.0f} CPU µs per order over gRPC, {sink_us['http']:.0f} over HTTP, "
        f"{sink_us['tenth']:.0f} at 10 %. The throughput ratios above include it; decoding every span, "
        "as a collector does on its own machine, cost ~22 µs an order here.",
        "",
        "## The other ratios",
        "",
        "| figure | value | sides |",
        "|---|---|---|",
        f"| P1 orchestration: orders/s ÷ payment's `POST /charge` alone (export off) | {p1:.2f} "
        f"| {m['off']['rps']:,.0f} orders/s; {charges['rps']:,.0f} charges/s "
        f"({charges['payment_us']:.0f} CPU µs per charge) |",
        f"| P4 export on ÷ off | {ratio('grpc'):.2f} | see above |",
        f"| P4 10 % sampled ÷ off | {ratio('tenth'):.2f} | see above |",
        f"| P5 p99 of a refused order (breaker forced open, 503) ÷ p99 of `GET /health` | {p5_ratio:.2f} "
        f"| {p5['refused']['p99_ms']:.2f} ms; {p5['health']['p99_ms']:.2f} ms |",
        f"| loadgen ÷ wrk, `GET /health` of payment-service | {loadgen[0]['GET /health', 32]:.2f} at 32 "
        f"connections, {loadgen[0]['GET /health', 50]:.2f} at 50 | medians of interleaved rounds, below |",
        f"| loadgen ÷ wrk, `POST /orders` of order-service | {loadgen[0]['POST /orders', 32]:.2f} at 32 "
        f"connections | medians of interleaved rounds, below |",
        f"| group commit: durable ÷ in-memory `POST /charge` | {durable_ratio:.2f} | below |",
        f"| keyed orders on PostgreSQL ÷ in memory | {store_ratio:.2f} | below |",
        f"| 100 closed-model clients on 10 permits: goodput ÷ capacity | {closed['of_capacity']:.2f} "
        f"| {closed['refused']:,} refused of {closed['sent']:,}; below |",
        f"| arrivals at 2 × capacity: goodput ÷ capacity | {opened['of_capacity']:.2f} "
        f"| p99 {opened['p99_ms']:.0f} ms; below |",
        "",
        "## The durable ledger: group commit",
        "",
        f"`POST /charge` alone, new keys, {CONNECTIONS} connections, against an in-memory ledger, "
        "the append-only log (`PAYMENT_LEDGER_PATH`) with its defaults, and the log without the "
        f"commit delay (`PAYMENT_LEDGER_COMMIT_DELAY_US=0`), interleaved over {LEDGER_ROUNDS} rounds; "
        "medians. Charges for new keys queue for one writer, which writes every charge waiting "
        "with one write over zeros written ahead and syncs once; each is acknowledged after the "
        "sync that covers it. Under load the writer first waits (at most 100 µs from the first "
        "charge queued) for as many charges as its last sync covered. CPU is payment-service's "
        "user + system time per charge, writer thread included.",
        "",
        "| ledger | charges/s | ÷ in memory | per round | CPU µs/charge | mean batch | syncs/s |",
        "|---|---|---|---|---|---|---|",
        *[ledger_row(kind) for kind in LEDGER_KINDS],
        "",
        "## PostgreSQL beside memory (`make bench-store`)",
        "",
        f"Keyed orders (`scripts/wrk/keyed-order.lua`: a new `Idempotency-Key` per request), {CONNECTIONS} "
        f"connections, export off, one order-service in memory and one on PostgreSQL (the machine's "
        f"server, a database of its own, past one unmeasured round and an `ANALYZE`, as a deployment is "
        f"after its first minute), interleaved over {ROUNDS} rounds; medians. PostgreSQL's CPU is "
        "every server process's (backends, WAL writer, checkpointer); commits are the database's, "
        "per completed order. What was tried to lower them, and what each measured, is in "
        "[the PostgreSQL path](postgres-path.md).",
        "",
        *stores[1],
        "",
        "## Overload at the Go original's latencies (`make bench-overload`)",
        "",
        "payment-service at the original's latencies (validate 5 ms, gateway 20 ms), 10 permits, the "
        "500 ms budget, export off, keyed orders from loadgen for "
        f"{bench_overload.SECONDS} s each. Capacity is measured in the same pair just before each run "
        "(wrk with 10 connections straight at payment's `POST /charge`: permits ÷ the mean call as the "
        "caller sees it). p50 and p99 are of every answer, refusals included. How the bulkhead decides "
        "is in [reliability](reliability.md#the-bulkhead).",
        "",
        *bench_overload.table(overload),
        "",
        *bench_tls.table(tls),
        "## Per-client limits: one client floods, another orders steadily (`make bench-clients`)",
        "",
        *bench_clients.table(clients),
        "",
        "## The actors' cost per order (`cargo bench -p order-service --bench pipeline`)",
        "",
        "Latency of one order at a time, not CPU: each awaited message is a round trip to the",
        "actors' thread and back, as from the service's workers other than the first (which runs them).",
        "",
        "```",
        actors,
        "```",
        "",
        "## loadgen against wrk (`scripts/bench-loadgen.sh`)",
        "",
        "Same target (payment-service's `GET /health`, where the client's own cost shows most, and "
        "order-service's `POST /orders` at payment latency 0, export off), same connections, same body, "
        "rounds in alternating order: "
        "single runs swing by ±10 % on two shared cores, so the ratio is their median. loadgen writes and "
        "reads HTTP/1.1 itself (`loadgen/src/client/wire.rs`); with hyper's client it spent ~8.5 µs of user "
        "CPU per request here, wrk ~1.5, loadgen now ~3. Its closed-model users run on one single-threaded "
        "runtime per core, as wrk runs its connections: on a multi-thread runtime it reached ~0.9 of wrk "
        "on `/health` although it spent no more CPU per request.",
        "",
        "```",
        loadgen[1],
        "```",
        "",
        "## Every run",
        "",
        "```",
        *[json.dumps(r) for k in ("off", "grpc", "http", "tenth") for r in runs[k]],
        json.dumps({"charges": charges}),
        json.dumps({"p5": p5}),
        *[json.dumps({"ledger": r}) for k in LEDGER_KINDS for r in ledger[k]],
        *[json.dumps({"store": r}) for k in ("floor", "memory", "postgresql") for r in stores[0][k]],
        json.dumps({"production": stores[2]}),
        *[json.dumps({"overload": r}) for k in ("closed", "open") for r in overload[k]],
        "```",
        "",
    ]
    OUT.write_text("\n".join(lines))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
