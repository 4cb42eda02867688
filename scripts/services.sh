#!/usr/bin/env bash
# Starts, stops and reports the two services run natively in the background
# (`make run` / `make stop` / `make status`). Logs go to logs/, pid files and
# the payment ledger to run/, both under the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release}
ORDER_PORT=${ORDER_PORT:-8080}
PAYMENT_PORT=${PAYMENT_PORT:-8081}
RUN_DIR=run
LOG_DIR=logs

running() { [[ -f "$RUN_DIR/$1.pid" ]] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }

wait_healthy() { # name url
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "$2/health" 2>/dev/null; then return 0; fi
    if ! running "$1"; then
      echo "$1 exited during start-up; last log lines:" >&2
      tail -n 20 "$LOG_DIR/$1.log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "$1 did not become healthy on $2 within 10 s (see $LOG_DIR/$1.log)" >&2
  return 1
}

start_one() { # name port env...
  local name=$1 port=$2; shift 2
  if running "$name"; then echo "$name already running (pid $(cat "$RUN_DIR/$name.pid"))"; return; fi
  env PORT="$port" "$@" nohup "$BIN/$name" >>"$LOG_DIR/$name.log" 2>&1 &
  echo $! >"$RUN_DIR/$name.pid"
  wait_healthy "$name" "http://127.0.0.1:$port"
  echo "$name listening on http://localhost:$port (pid $(cat "$RUN_DIR/$name.pid"), log $LOG_DIR/$name.log)"
}

stop_one() {
  local name=$1
  if running "$name"; then
    local pid; pid=$(cat "$RUN_DIR/$name.pid")
    kill -TERM "$pid"
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; echo "$name killed (did not stop within 15 s)"; else echo "$name stopped"; fi
  else
    echo "$name not running"
  fi
  rm -f "$RUN_DIR/$name.pid"
}

case "${1:-}" in
  start)
    mkdir -p "$RUN_DIR" "$LOG_DIR"
    # The same admin token as the compose stack, so `make fault-*` works on both.
    export ADMIN_TOKEN=${ADMIN_TOKEN:-dev-admin-token}
    start_one payment-service "$PAYMENT_PORT" PAYMENT_LEDGER_PATH="${PAYMENT_LEDGER_PATH:-$RUN_DIR/payment-ledger.jsonl}" \
      OTEL_SERVICE_NAME=payment-service
    start_one order-service "$ORDER_PORT" PAYMENT_SERVICE_URL="${PAYMENT_SERVICE_URL:-http://127.0.0.1:$PAYMENT_PORT}" \
      OTEL_SERVICE_NAME=order-service
    ;;
  stop)
    stop_one order-service
    stop_one payment-service
    ;;
  status)
    for name in payment-service order-service; do
      if running "$name"; then echo "$name running (pid $(cat "$RUN_DIR/$name.pid"))"; else echo "$name not running"; fi
    done
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
