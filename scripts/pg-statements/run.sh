#!/usr/bin/env bash
# The order's two statements alone, under pgbench (prepared, CLIENTS (16)
# clients, SECONDS_EACH (10) s), in a database of their own per variant:
# completed orders/s, the machine's CPU per order minus pgbench's own
# (the database's when nothing else runs), and the server's WAL syncs
# (pg_stat_wal: the whole server's) per second and orders per sync. The
# variants are what docs/postgres-path.md reports: the schema as it is, its schedule in a
# table of its own, without the due index, the key's answer kept as a
# reference instead of a copy, the key as columns of its order, and with
# asynchronous commit
# (for scale only: the service never gives up durability). Then the
# database's cost taken apart, eight orders a transaction as in the
# service's shared statements: the floor (two columns, one index), the
# order's whole row, its idempotency key beside it, the due index (the
# migration as it is), and the same without storing the key's answer.
#
# The batched variants plan each statement for its parameters
# (plan_cache_mode = force_custom_plan, planning shared by the eight
# orders): a prepared statement's generic plan, made for tables never
# analysed, scans the whole of orders for each batched update (a run
# then costs three times as much, more as the table grows), where the
# service's plans are made after ANALYZE. A statement of one order
# pays for its planning alone: those keep their prepared plans.
#
# Each variant's schema is order-service's own migration (SCHEMA), edited
# by SCHEMA_EDIT (a sed script) and followed by SCHEMA_EXTRA; its script is
# edited by SCRIPT_EDIT (a sed script), so that a variant that leaves a
# statement out is the same script less that statement, not a copy.
#
# Database: BENCH_DATABASE_URL (a server URL ending in /postgres), by
# default the machine's at 127.0.0.1:5432.
set -euo pipefail
cd "$(dirname "$0")"
admin=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
server=${admin%/*}
pgbench=$(ls -d /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | sort -V | tail -n 1)
pgbench=${pgbench:-pgbench}
migration=../../services/order-service/migrations/0001_orders_and_keys.sql
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }

variant() { # label script [PGOPTIONS]
  local db=pg_statements_$$ label=$1 script
  script=$(mktemp --suffix=.sql)
  sed "${SCRIPT_EDIT:-}" "$2" > "$script"
  psql "$admin" -qc "CREATE DATABASE $db"
  { sed "${SCHEMA_EDIT:-}" "${SCHEMA:-$migration}"; cat ${SCHEMA_EXTRA:-/dev/null}; } | psql -q "$server/$db"
  local before after out own orders
  local syncs; syncs=$(psql "$admin" -Atc "SELECT wal_sync FROM pg_stat_wal")
  before=$(busy)
  out=$(PGOPTIONS=${3:-} /usr/bin/time -f "OWN %U %S" "$pgbench" -n -M prepared -D n=0 -c "${CLIENTS:-16}" -j 2 \
    -T "${SECONDS_EACH:-10}" -f "$script" "$server/$db" 2>&1)
  after=$(busy)
  syncs=$(( $(psql "$admin" -Atc "SELECT wal_sync FROM pg_stat_wal") - syncs ))
  own=$(echo "$out" | awk '/^OWN/ {printf "%d", ($2 + $3) * 100}')
  orders=$(psql "$server/$db" -Atc "SELECT count(*) FROM orders WHERE status = 'completed'")
  psql "$admin" -qc "DROP DATABASE $db"
  rm -f "$script"
  awk -v l="$label" -v n="$orders" -v t="${SECONDS_EACH:-10}" -v cpu=$((after - before - own)) -v own="$own" -v s="$syncs" \
    'BEGIN { printf "%-34s %7.0f orders/s  database %4.0f µs/order  (pgbench %3.0f)  %5.0f WAL syncs/s, %4.1f orders per sync\n",
      l, n / t, cpu * 10000 / n, own * 10000 / n, s / t, n / (s > 0 ? s : 1) }'
}

no_due_index='/CREATE INDEX orders_due/d'
variant "as migrated" order.sql
SCHEMA_EDIT=$no_due_index SCHEMA_EXTRA=schedule-table.sql variant "schedule in a table of its own" order-schedule-table.sql
SCHEMA_EDIT=$no_due_index variant "without the due index" order.sql
variant "the replay as a reference (no body)" order-replay-ref.sql
SCHEMA_EXTRA=key-columns.sql variant "the key as columns of its order (reverted)" order-key-columns.sql
variant "asynchronous commit (scale only)" order.sql "-c synchronous_commit=off"
SCHEMA=one-row-schema.sql variant "reference: one single-row INSERT" one-row.sql
custom="-c plan_cache_mode=force_custom_plan"
variant "eight orders per statement" order-batch-of-8.sql "$custom"
SCHEMA=floor-schema.sql variant "floor: two columns, 8 orders a commit" floor.sql "$custom"
SCHEMA=order-row-schema.sql variant "the order's row, 8 a commit" order-row.sql "$custom"
SCHEMA_EDIT=$no_due_index variant "and its key, 8 a commit" order-and-key.sql "$custom"
variant "and the due index (as migrated), 8" order-and-key.sql "$custom"
SCRIPT_EDIT='/UPDATE idempotency_keys/d' variant "as migrated, the key's answer unstored" order-and-key.sql "$custom"
