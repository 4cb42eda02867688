#!/usr/bin/env bash
# Keyed orders/s with the in-memory store and with PostgreSQL, same run,
# same load (closed model, 32 connections, SECONDS_EACH (10) s each),
# payment's simulated latency at 0, trace export off; then pgbench's
# single-row insert TPS at 32 clients on the same server, for scale. With
# PostgreSQL it also counts the database's commits per order (every
# statement is its own transaction, so these are its round trips too,
# beside one prepare per statement and connection).
#
# Database: BENCH_DATABASE_URL (a server URL ending in /postgres), by
# default the machine's at 127.0.0.1:5432; a database of its own, dropped
# at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q --bins

admin=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db=bench_store_$$
server=${admin%/*}
pg_bin() {
  local dir; dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [[ -n "$dir" ]]; then echo "$dir/$1"; else command -v "$1"; fi
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
psql "$admin" -qc "CREATE DATABASE $db"
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
}
trap cleanup EXIT

commits() { psql "$admin" -Atc "SELECT xact_commit FROM pg_stat_database WHERE datname = '$db'"; }
backends() { psql "$admin" -Atc "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db'"; }

export PAYMENT_API_KEY=bench-store-key

measure() { # label env...
  local label=$1; shift
  local pay ord; pay=$(free_port); ord=$(free_port)
  env PORT=$pay BIND_ADDR=127.0.0.1 RUST_LOG=warn OTEL_SDK_DISABLED=true PAYMENT_VALIDATE_MS=0 PAYMENT_GATEWAY_MS=0 \
    target/release/payment-service >/dev/null 2>&1 & local p=$!
  env "$@" PORT=$ord BIND_ADDR=127.0.0.1 RUST_LOG=warn OTEL_SDK_DISABLED=true BULKHEAD_MAX=64 \
    PAYMENT_SERVICE_URL=http://127.0.0.1:$pay target/release/order-service >/dev/null 2>&1 & local o=$!
  pids+=("$p" "$o")
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$ord/ready" 2>/dev/null && break; sleep 0.1; done
  target/release/loadgen --url "http://127.0.0.1:$ord/orders" -c 32 --duration "${SECONDS_EACH:-10}s" -idempotent --json \
    2>/dev/null >"run-bench-$label.json"
  kill "$o" "$p"; wait "$o" "$p" 2>/dev/null || true
  python3 - "$label" "run-bench-$label.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
print(f"{sys.argv[1]:<11} {r['requests_per_sec']:8.1f} orders/s, p99 {r['latency']['p99_ms']} ms, "
      f"{r['status_codes'].get('201', 0)} of {r['total']} were 201")
PY
}

measure memory
# Migrate first, so that the count below is the orders'.
env DATABASE_URL="$server/$db" PORT=0 OTEL_SDK_DISABLED=true RUST_LOG=warn target/release/order-service >/dev/null 2>&1 &
m=$!; pids+=("$m")
for _ in $(seq 1 100); do [[ $(psql "$server/$db" -Atc "SELECT to_regclass('orders') IS NOT NULL") == t ]] && break; sleep 0.1; done
kill "$m"; wait "$m" 2>/dev/null || true
for _ in $(seq 1 100); do [[ $(backends) == 0 ]] && break; sleep 0.1; done
before=$(commits)
measure postgresql DATABASE_URL="$server/$db"
# A backend reports its statistics at the latest when it exits.
for _ in $(seq 1 100); do [[ $(backends) == 0 ]] && break; sleep 0.1; done
after=$(commits)
orders=$(psql "$server/$db" -Atc "SELECT count(*) FROM orders WHERE status = 'completed'")
python3 - "$before" "$after" "$orders" run-bench-memory.json run-bench-postgresql.json <<'PY'
import json, sys
before, after, orders = map(int, sys.argv[1:4])
mem, pg = (json.load(open(p))['requests_per_sec'] for p in sys.argv[4:6])
print(f"PostgreSQL ÷ memory: {pg / mem:.2f}")
print(f"commits (= statements) per completed order: {(after - before) / max(orders, 1):.2f} "
      f"({after - before} commits, {orders} orders)")
PY
rm -f run-bench-memory.json run-bench-postgresql.json

# pgbench: one single-row INSERT per transaction, 32 clients.
psql "$server/$db" -qc "CREATE TABLE pgbench_insert (id bigserial PRIMARY KEY, v text NOT NULL)"
echo "INSERT INTO pgbench_insert (v) VALUES ('x');" >run-bench-insert.sql
tps=$("$(pg_bin pgbench)" -n -c 32 -j 2 -T "${SECONDS_EACH:-10}" -f run-bench-insert.sql "$server/$db" 2>/dev/null \
  | awk '/^tps/ {print $3; exit}')
rm -f run-bench-insert.sql
echo "pgbench single-row INSERT, 32 clients: $tps TPS"
