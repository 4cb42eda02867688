#!/usr/bin/env bash
# loadgen against wrk, same target: payment-service's /health, the same
# number of connections, in ROUNDS rounds whose order alternates (wrk first,
# then loadgen first) so neither always meets the warmer server. Prints
# every run and, per connection count, the median of the rounds' ratios
# (loadgen must reach at least 0.95 of wrk).
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${CONNECTIONS:-32 50}
ROUNDS=${ROUNDS:-3}
SECONDS_EACH=${SECONDS_EACH:-8}
command -v wrk >/dev/null || { echo "installing wrk"; ${SUDO:-$( [ "$(id -u)" -ne 0 ] && echo sudo )} apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q --bin payment-service --bin loadgen

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PORT=$port BIND_ADDR=127.0.0.1 OTEL_SDK_DISABLED=true RUST_LOG=warn PAYMENT_API_KEY=bench-loadgen-key target/release/payment-service >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null && break; sleep 0.1; done
url="http://127.0.0.1:$port/health"

run_wrk() { wrk -t2 -c"$1" -d"${SECONDS_EACH}s" "$url" | awk '/Requests\/sec/ {print $2}'; }
run_loadgen() {
  target/release/loadgen --url "$url" --method GET -c "$1" --duration "${SECONDS_EACH}s" --json \
    | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["requests_per_sec"], 2))'
}

for connections in $CONNECTIONS; do
  ratios=()
  for round in $(seq 1 "$ROUNDS"); do
    if (( round % 2 )); then
      wrk_rps=$(run_wrk "$connections"); loadgen_rps=$(run_loadgen "$connections")
    else
      loadgen_rps=$(run_loadgen "$connections"); wrk_rps=$(run_wrk "$connections")
    fi
    ratio=$(python3 -c "print(round($loadgen_rps / $wrk_rps, 3))")
    ratios+=("$ratio")
    echo "$connections connections, round $round: wrk $wrk_rps/s, loadgen $loadgen_rps/s, ratio $ratio"
  done
  median=$(python3 -c "import statistics,sys; print(round(statistics.median(map(float, sys.argv[1:])), 3))" "${ratios[@]}")
  echo "ratio:   $median (loadgen / wrk, $connections connections, median of $ROUNDS rounds of ${SECONDS_EACH}s)"
done
