#!/usr/bin/env bash
# The order's two statements alone, under pgbench (prepared, CLIENTS (16)
# clients, SECONDS_EACH (10) s), in a database of their own per variant:
# completed orders/s, the machine's CPU per order minus pgbench's own
# (the database's when nothing else runs), and the server's WAL syncs
# (pg_stat_wal: the whole server's) per second and orders per sync. The
# variants are what docs/postgres-path.md reports: the schema as migrated
# (the key in its order's row, migration 0002), as it was before 0002
# (the key in a table of its own), and, on that older layout, its
# schedule in a table of its own, without the due index, the key's answer
# kept as a reference instead of a copy, and with asynchronous commit
# (for scale only: the service never gives up durability).
#
# Each variant's schema is order-service's own migrations (SCHEMA), edited
# by SCHEMA_EDIT (a sed script) and followed by SCHEMA_EXTRA.
#
# Database: BENCH_DATABASE_URL (a server URL ending in /postgres), by
# default the machine's at 127.0.0.1:5432.
set -euo pipefail
cd "$(dirname "$0")"
admin=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
server=${admin%/*}
pgbench=$(ls -d /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | sort -V | tail -n 1)
pgbench=${pgbench:-pgbench}
migrations=../../services/order-service/migrations
v1=$migrations/0001_orders_and_keys.sql
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }

variant() { # label script [PGOPTIONS]
  local db=pg_statements_$$ label=$1 script=$2
  psql "$admin" -qc "CREATE DATABASE $db"
  { cat ${SCHEMA:-$migrations/*.sql} | sed "${SCHEMA_EDIT:-}"; cat ${SCHEMA_EXTRA:-/dev/null}; } | psql -q "$server/$db"
  local before after out own orders
  local syncs; syncs=$(psql "$admin" -Atc "SELECT wal_sync FROM pg_stat_wal")
  before=$(busy)
  out=$(PGOPTIONS=${3:-} /usr/bin/time -f "OWN %U %S" "$pgbench" -n -M prepared -c "${CLIENTS:-16}" -j 2 \
    -T "${SECONDS_EACH:-10}" -f "$script" "$server/$db" 2>&1)
  after=$(busy)
  syncs=$(( $(psql "$admin" -Atc "SELECT wal_sync FROM pg_stat_wal") - syncs ))
  own=$(echo "$out" | awk '/^OWN/ {printf "%d", ($2 + $3) * 100}')
  orders=$(psql "$server/$db" -Atc "SELECT count(*) FROM orders WHERE status = 'completed'")
  psql "$admin" -qc "DROP DATABASE $db"
  awk -v l="$label" -v n="$orders" -v t="${SECONDS_EACH:-10}" -v cpu=$((after - before - own)) -v own="$own" -v s="$syncs" \
    'BEGIN { printf "%-34s %7.0f orders/s  database %4.0f µs/order  (pgbench %3.0f)  %5.0f WAL syncs/s, %4.1f orders per sync\n",
      l, n / t, cpu * 10000 / n, own * 10000 / n, s / t, n / (s > 0 ? s : 1) }'
}

no_due_index='/CREATE INDEX orders_due/d'
variant "as migrated (key in its order row)" order.sql
SCHEMA=$v1 variant "v1: key in a table of its own" order-v1.sql
SCHEMA=$v1 SCHEMA_EDIT=$no_due_index SCHEMA_EXTRA=schedule-table.sql variant "v1: schedule in a table of its own" order-schedule-table.sql
SCHEMA=$v1 SCHEMA_EDIT=$no_due_index variant "v1: without the due index" order-v1.sql
SCHEMA=$v1 variant "v1: the replay as a reference" order-replay-ref.sql
variant "asynchronous commit (scale only)" order.sql "-c synchronous_commit=off"
SCHEMA=one-row-schema.sql variant "reference: one single-row INSERT" one-row.sql
SCHEMA=$v1 variant "v1: eight orders per statement" order-batch-of-8.sql
