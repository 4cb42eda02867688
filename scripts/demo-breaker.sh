#!/usr/bin/env bash
# `make demo-breaker`: the circuit breaker's whole cycle, live, in under a
# minute, from a known state. Restarts the native services (make run) with a
# 5 s open time, follows the breaker's transitions (make watch) while a
# steady load runs, turns payment's failures on, waits for the breaker to
# open, turns them off, waits for the half-open trials to close it, and
# leaves the services as `make run` starts them, faults cleared. Every wait
# is on the breaker's reported state, never a guessed sleep.
set -euo pipefail
cd "$(dirname "$0")/.."

ORDER_URL=${ORDER_URL:-http://localhost:8080}
PAYMENT_URL=${PAYMENT_URL:-http://localhost:8081}
export ADMIN_TOKEN=${ADMIN_TOKEN:-dev-admin-token}
OPEN_MS=5000
RATE=${RATE:-40}
auth=(-H "Authorization: Bearer $ADMIN_TOKEN")

say() { printf '\n\033[1m→ %s\033[0m\n' "$*"; }
faults() { curl -fsS -X PUT "$PAYMENT_URL/admin/faults" "${auth[@]}" -H "Content-Type: application/json" -d "$1" >/dev/null; }
state() { curl -fsS "$ORDER_URL/admin/breaker" "${auth[@]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }
wait_for() { # state, within seconds
  local deadline=$((SECONDS + $2))
  until [[ "$(state)" == "$1" ]]; do
    if ((SECONDS >= deadline)); then echo "the breaker did not reach $1 within $2 s" >&2; exit 1; fi
    sleep 0.1
  done
}

pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  echo
  echo "leaving the services as make run starts them:"
  scripts/services.sh stop >/dev/null
  scripts/services.sh start | sed 's/^/  /'
}

say "restarting the services with the breaker open for $((OPEN_MS / 1000)) s at a time"
scripts/services.sh stop >/dev/null
CB_OPEN_MS=$OPEN_MS scripts/services.sh start | sed 's/^/  /'
trap cleanup EXIT
faults '{}'

say "watching the breaker (make watch does the same)"
python3 -u scripts/watch.py "$ORDER_URL" &
pids+=($!)
sleep 0.5

say "a steady $RATE orders/s"
target/release/loadgen --url "$ORDER_URL/orders" --rate "$RATE" --duration 60s -c 20 --json \
  >run/demo-breaker-load.json 2>/dev/null &
load=$!
pids+=($load)
sleep 2

say "payment fails every charge (make fault-errors fails 30 %)"
faults '{"error_pct":100}'
wait_for open 20
say "open: orders get 503 at once, payment is left alone"
sleep 2

say "payment healthy again; the breaker probes after its open time"
faults '{}'
wait_for closed $((OPEN_MS / 1000 + 10))
say "closed: orders flow again"
sleep 2
kill "$load" 2>/dev/null || true

say "what the clients got during the demo (order-service's /metrics)"
curl -fsS "$ORDER_URL/metrics" | python3 -c '
import re, sys
counts = {}
for line in sys.stdin:
    m = re.match(r"http_server_requests_total\{(.*)\} (\d+)", line)
    if m and "route=\"/orders\"" in m.group(1) and "method=\"POST\"" in m.group(1):
        status = re.search(r"status=\"(\d+)\"", m.group(1)).group(1)
        counts[status] = counts.get(status, 0) + int(m.group(2))
print("  " + ", ".join(f"{s}: {n}" for s, n in sorted(counts.items())))
print("  201 charged; 503 refused by the open breaker, nothing charged;")
print("  502 the failures that opened it (nothing charged either: payment failed them before charging)")
'
