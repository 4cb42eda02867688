#!/usr/bin/env bash
# `make demo-breaker`: the circuit breaker's whole cycle, live, in under a
# minute, from a known state. Restarts the native services (make run) with a
# 5 s open time, follows the breaker's transitions (make watch) while a
# steady load runs, turns payment's failures on, waits for the breaker to
# open, turns them off, waits for the half-open trials to close it, and
# leaves the services as `make run` starts them, faults cleared. Every wait
# is on the breaker's reported state, never a guessed sleep.
source "$(dirname "$0")/demo-lib.sh"

OPEN_MS=5000
RATE=${RATE:-40}

say "restarting the services with the breaker open for $((OPEN_MS / 1000)) s at a time"
trap leave_clean EXIT
dashboard
restart CB_OPEN_MS=$OPEN_MS

say "watching the breaker (make watch does the same)"
watch_breaker

say "a steady $RATE orders/s"
"$LOADGEN" --url "$ORDER_URL/orders" --rate "$RATE" --duration 60s -c 20 --breaker "$ORDER_URL" \
  --marks "$MARKS" --timeline "$REPORTS/demo-breaker.svg" --json >run/demo-breaker-load.json 2>/dev/null &
load=$!
background+=("$load")
sleep 2

say "payment fails every charge (make fault-errors fails 30 %)"
faults '{"error_pct":100}' "100 % errors"
wait_for open 20
say "open: orders get 503 at once, payment is left alone"
sleep 2

say "payment healthy again; the breaker probes after its open time"
faults '{}' "faults cleared"
wait_for closed $((OPEN_MS / 1000 + 10))
say "closed: orders flow again"
sleep 2
kill -INT "$load" 2>/dev/null || true
wait "$load" || true
echo "timeline: $REPORTS/demo-breaker.svg"

say "what the clients got during the demo (order-service's /metrics)"
echo "  $(answers)"
echo "  201 charged; 503 refused by the open breaker, nothing charged;"
echo "  502 the failures that opened it (nothing charged either: payment failed them before charging)"
