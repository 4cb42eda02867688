#!/usr/bin/env bash
# loadgen against wrk, same run, same target: payment-service's /health,
# the same number of connections, one after the other. Prints both rates
# and their ratio (loadgen must reach at least 0.9 of wrk).
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${CONNECTIONS:-50}
SECONDS_EACH=${SECONDS_EACH:-10}
command -v wrk >/dev/null || { echo "installing wrk"; ${SUDO:-$( [ "$(id -u)" -ne 0 ] && echo sudo )} apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q --bin payment-service --bin loadgen

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PORT=$port BIND_ADDR=127.0.0.1 OTEL_SDK_DISABLED=true RUST_LOG=warn PAYMENT_API_KEY=bench-loadgen-key target/release/payment-service >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null && break; sleep 0.1; done
url="http://127.0.0.1:$port/health"

wrk_rps=$(wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" "$url" | awk '/Requests\/sec/ {print $2}')
loadgen_rps=$(target/release/loadgen --url "$url" --method GET -c "$CONNECTIONS" --duration "${SECONDS_EACH}s" --json \
  | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["requests_per_sec"], 2))')
ratio=$(python3 -c "print(round($loadgen_rps / $wrk_rps, 3))")
echo "wrk:     $wrk_rps requests/s"
echo "loadgen: $loadgen_rps requests/s"
echo "ratio:   $ratio (loadgen / wrk, $CONNECTIONS connections, ${SECONDS_EACH}s each)"
