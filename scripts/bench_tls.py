#!/usr/bin/env python3
"""`make bench-tls`, and the TLS section of `make bench`: what HTTPS on both
listeners and mutual TLS on the payment call cost per order, against the
same pair on plain HTTP, interleaved over TLS_ROUNDS rounds (export off,
the load of bench.py's trace table: wrk, keep-alive connections, so the
handshakes are few and what is measured is mostly the records' crypto).

The certificates are scripts/tls-certs.sh's, made into a temporary folder.

Environment: TLS_ROUNDS (3), and bench.py's SECONDS_EACH and CONNECTIONS.
"""

import os
import ssl
import statistics
import tempfile

import bench

ROUNDS = int(os.environ.get("TLS_ROUNDS", "3"))
OFF = {"OTEL_SDK_DISABLED": "true"}


def figures():
    certs = tempfile.mkdtemp(prefix="bench-tls-")
    bench.sh("scripts/tls-certs.sh", certs, capture_output=True)
    context = ssl.create_default_context(cafile=f"{certs}/ca.pem")
    context.load_cert_chain(f"{certs}/operator.pem", f"{certs}/operator-key.pem")
    bench.TLS_CONTEXT = context
    runs = {"plain": [], "tls": []}
    for _ in range(ROUNDS):
        runs["plain"].append(bench.orders_run("plain", OFF))
        runs["tls"].append(bench.orders_run("tls", OFF, tls=certs))
    return runs


def table(runs):
    m = {k: {f: statistics.median(r[f] for r in v) for f in ("rps", "order_us", "payment_us")} for k, v in runs.items()}
    failed = sum(r["non2xx"] for r in runs["tls"])
    per_round = ", ".join(f"{t['rps'] / p['rps']:.2f}" for t, p in zip(runs["tls"], runs["plain"]))
    lines = [
        "## TLS: what HTTPS and mutual TLS cost",
        "",
        f"The same pair and load, export off, on plain HTTP and with TLS on every hop (`TLS_CERT` on both "
        f"listeners, order → payment over mutual TLS), interleaved over {len(runs['tls'])} rounds; "
        "medians. wrk keeps its connections, as order-service keeps its pool to payment: the "
        "handshakes are few, and the cost is the records' encryption and the TLS layer's copies.",
        "",
        "| | orders/s | ÷ plain | per round | CPU µs per order, order-service | CPU µs per charge, payment-service |",
        "|---|---|---|---|---|---|",
        f"| plain HTTP | {m['plain']['rps']:,.0f} | — | — | {m['plain']['order_us']:.0f} | {m['plain']['payment_us']:.0f} |",
        f"| TLS, mutual on the payment call | {m['tls']['rps']:,.0f} | {m['tls']['rps'] / m['plain']['rps']:.2f} "
        f"| {per_round} | {m['tls']['order_us']:.0f} | {m['tls']['payment_us']:.0f} |",
        "",
        f"TLS adds {m['tls']['order_us'] - m['plain']['order_us']:.0f} µs of order-service's CPU per order "
        f"(two TLS connections' worth of records: the client's and the payment call) and "
        f"{m['tls']['payment_us'] - m['plain']['payment_us']:.0f} µs of payment-service's per charge"
        + (f"; {failed} answers were not 2xx." if failed else "; every answer was 2xx."),
        "",
    ]
    return lines


def main():
    bench.ensure_wrk()
    bench.sh("cargo", "build", "--release", "-q", "--bins")
    print("\n".join(table(figures())))


if __name__ == "__main__":
    main()
