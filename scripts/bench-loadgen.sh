#!/usr/bin/env bash
# loadgen against wrk, same target, same number of connections, in ROUNDS
# rounds whose order alternates (wrk first, then loadgen first) so neither
# always meets the warmer server. Two targets: payment-service's
# GET /health (the cheapest answer there is, so the client's own cost
# shows most) and order-service's POST /orders (new orders, no key, payment
# latency 0, export off). Prints every run and, per target and connection
# count, the median of the rounds' ratios (loadgen must reach at least 0.95
# of wrk).
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${CONNECTIONS:-32 50}
ORDER_CONNECTIONS=${ORDER_CONNECTIONS:-32}
ROUNDS=${ROUNDS:-3}
SECONDS_EACH=${SECONDS_EACH:-8}
command -v wrk >/dev/null || { echo "installing wrk"; ${SUDO:-$( [ "$(id -u)" -ne 0 ] && echo sudo )} apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q --bin payment-service --bin order-service --bin loadgen

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pay_port=$(free_port)
ord_port=$(free_port)
export BIND_ADDR=127.0.0.1 OTEL_SDK_DISABLED=true RUST_LOG=warn PAYMENT_API_KEY=bench-loadgen-key
PORT=$pay_port PAYMENT_VALIDATE_MS=0 PAYMENT_GATEWAY_MS=0 target/release/payment-service >/dev/null 2>&1 &
payment=$!
PORT=$ord_port BULKHEAD_MAX=64 PAYMENT_SERVICE_URL="http://127.0.0.1:$pay_port" target/release/order-service >/dev/null 2>&1 &
order=$!
trap 'kill $payment $order 2>/dev/null' EXIT
for ready in "http://127.0.0.1:$pay_port/health" "http://127.0.0.1:$ord_port/ready"; do
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "$ready" 2>/dev/null && break; sleep 0.1; done
done

# compare LABEL URL "CONNECTIONS" "WRK ARGS" "LOADGEN ARGS"
compare() {
  local label=$1 url=$2 connection_counts=$3 wrk_args=$4 loadgen_args=$5
  for connections in $connection_counts; do
    local ratios=() wrk_rps loadgen_rps ratio
    for round in $(seq 1 "$ROUNDS"); do
      if (( round % 2 )); then
        wrk_rps=$(run_wrk); loadgen_rps=$(run_loadgen)
      else
        loadgen_rps=$(run_loadgen); wrk_rps=$(run_wrk)
      fi
      ratio=$(python3 -c "print(round($loadgen_rps / $wrk_rps, 3))")
      ratios+=("$ratio")
      echo "$label, $connections connections, round $round: wrk $wrk_rps/s, loadgen $loadgen_rps/s, ratio $ratio"
    done
    median=$(python3 -c "import statistics,sys; print(round(statistics.median(map(float, sys.argv[1:])), 3))" "${ratios[@]}")
    echo "ratio:   $median (loadgen / wrk, $label, $connections connections, median of $ROUNDS rounds of ${SECONDS_EACH}s)"
  done
}
# shellcheck disable=SC2086 # the argument strings are word lists
run_wrk() { wrk -t2 -c"$connections" -d"${SECONDS_EACH}s" $wrk_args "$url" | awk '/Requests\/sec/ {print $2}'; }
# shellcheck disable=SC2086
run_loadgen() {
  target/release/loadgen --url "$url" -c "$connections" --duration "${SECONDS_EACH}s" --json $loadgen_args \
    | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["requests_per_sec"], 2))'
}

compare "GET /health" "http://127.0.0.1:$pay_port/health" "$CONNECTIONS" "" "--method GET"
# The same body from both: wrk's script and loadgen's defaults.
compare "POST /orders" "http://127.0.0.1:$ord_port/orders" "$ORDER_CONNECTIONS" "-s scripts/wrk/order.lua" ""
