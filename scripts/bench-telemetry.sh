#!/usr/bin/env bash
# Order throughput with trace export on (to a live OTLP sink), on with 10 %
# sampling, and off (OTEL_SDK_DISABLED=true): same run, same load, closed
# model, 20 connections, SECONDS_EACH (10) s each, payment's simulated
# latency at 0, with each service's CPU time per order (from /proc). On 2
# cores the services, loadgen and the sink share the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q --bins
cargo build --release -q -p order-service --example otlp_sink

# User + system CPU time of a process so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

target/release/examples/otlp_sink > run-sink.endpoint 2> run-sink.log &
pids+=($!)
for _ in $(seq 1 50); do [ -s run-sink.endpoint ] && break; sleep 0.1; done
sink=$(head -1 run-sink.endpoint); rm -f run-sink.endpoint

measure() { # label env...
  local label=$1; shift
  local pay ord; pay=$(free_port); ord=$(free_port)
  env "$@" PORT=$pay BIND_ADDR=127.0.0.1 RUST_LOG=warn PAYMENT_VALIDATE_MS=0 PAYMENT_GATEWAY_MS=0 \
    target/release/payment-service >/dev/null 2>&1 & local p=$!
  env "$@" PORT=$ord BIND_ADDR=127.0.0.1 RUST_LOG=warn PAYMENT_SERVICE_URL=http://127.0.0.1:$pay \
    target/release/order-service >/dev/null 2>&1 & local o=$!
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$ord/ready" 2>/dev/null && break; sleep 0.1; done
  local o0 p0; o0=$(cpu_ticks $o); p0=$(cpu_ticks $p)
  target/release/loadgen --url "http://127.0.0.1:$ord/orders" -c 20 --duration ${SECONDS_EACH:-10}s --json 2>/dev/null >run-bench.json
  local o1 p1; o1=$(cpu_ticks $o); p1=$(cpu_ticks $p)
  python3 -c "import json; r=json.load(open('run-bench.json')); n=max(r['total'],1); hz=$(getconf CLK_TCK)
print('$label', round(r['requests_per_sec'],1), 'orders/s, p99', r['latency']['p99_ms'], 'ms,', r['successful'], 'of', r['total'], '201;',
      'CPU per order: order-service', round(($o1-$o0)*1e6/hz/n), 'us, payment', round(($p1-$p0)*1e6/hz/n), 'us')"
  rm -f run-bench.json
  kill $o $p; wait $o $p 2>/dev/null || true
}

measure "export off:" OTEL_SDK_DISABLED=true
measure "export on: " OTEL_EXPORTER_OTLP_ENDPOINT="$sink"
measure "export on, 10 % sampled:" OTEL_EXPORTER_OTLP_ENDPOINT="$sink" \
  OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.1
sleep 2
echo "spans received by the sink: $(tail -1 run-sink.log | awk '{print $NF}')"
rm -f run-sink.log
