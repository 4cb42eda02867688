#!/usr/bin/env bash
# Starts, stops and reports the services run natively in the background
# (`make run` / `make run-replicas` / `make stop` / `make status`). Logs go
# to logs/, pid files, the payment ledger and any private PostgreSQL to
# run/, all under the repository.
#
# `start-replicas`: payment-service, REPLICAS order-services on PostgreSQL
# (DATABASE_URL; else the machine's server at 127.0.0.1:5432; else one
# started here from the installed server binaries, in run/postgres) and
# nginx on ORDER_PORT in front of them, so the same curl examples work.
#
# TLS=1 (`make run-tls`, `make run-replicas TLS=1`): every listener on
# HTTPS and order → payment over mutual TLS, with a local CA and
# certificates made into run/tls by scripts/tls-certs.sh; run/tls.on marks
# the mode for the other targets (curl reads run/tls/curlrc) and for a
# restart.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release}
ORDER_PORT=${ORDER_PORT:-8080}
PAYMENT_PORT=${PAYMENT_PORT:-8081}
RUN_DIR=${RUN_DIR:-run}
LOG_DIR=${LOG_DIR:-logs}
# Absolute, for nginx's prefix and PostgreSQL's data (RUN_DIR may be either).
RUN_PATH=$(cd "$(dirname "$RUN_DIR")" 2>/dev/null && pwd)/$(basename "$RUN_DIR")
REPLICAS=${REPLICAS:-3}
REPLICA_BASE_PORT=${REPLICA_BASE_PORT:-8090}
PRIVATE_PG_PORT=${PRIVATE_PG_PORT:-5433}
DATABASE_NAME=${DATABASE_NAME:-reliable_orders}

TLS_DIR=$RUN_DIR/tls
if [[ -z "${TLS:-}" && -f "$RUN_DIR/tls.on" ]] && [[ "${1:-}" == restart-running ]]; then TLS=1; fi
if [[ "${TLS:-}" == 1 ]]; then
  SCHEME=https CURL_TLS=(-K "$TLS_DIR/curlrc")
  PAYMENT_TLS_ENV=(TLS_CERT="$TLS_DIR/payment.pem" TLS_KEY="$TLS_DIR/payment-key.pem" CLIENT_CA="$TLS_DIR/ca.pem")
  ORDER_TO_PAYMENT_ENV=(PAYMENT_CA="$TLS_DIR/ca.pem" PAYMENT_CLIENT_CERT="$TLS_DIR/order-client.pem"
    PAYMENT_CLIENT_KEY="$TLS_DIR/order-client-key.pem")
  ORDER_TLS_ENV=(TLS_CERT="$TLS_DIR/order.pem" TLS_KEY="$TLS_DIR/order-key.pem")
else
  SCHEME=http CURL_TLS=() PAYMENT_TLS_ENV=() ORDER_TO_PAYMENT_ENV=() ORDER_TLS_ENV=()
fi

running() { [[ -f "$RUN_DIR/$1.pid" ]] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }

wait_healthy() { # name url
  for _ in $(seq 1 100); do
    if curl -fsS "${CURL_TLS[@]}" -o /dev/null "$2/health" 2>/dev/null; then return 0; fi
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
  wait_healthy "$name" "$SCHEME://127.0.0.1:$port"
  echo "$name listening on $SCHEME://localhost:$port (pid $(cat "$RUN_DIR/$name.pid"), log $LOG_DIR/$name.log)"
}

# Stops `name` if this script started it; says nothing of what it never
# started (make run starts no replicas and no nginx).
stop_one() {
  local name=$1
  [[ -f "$RUN_DIR/$name.pid" ]] || return 0
  if running "$name"; then
    local pid; pid=$(cat "$RUN_DIR/$name.pid")
    kill -TERM "$pid"
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; echo "$name killed (did not stop within 15 s)"; else echo "$name stopped"; fi
  else
    echo "$name had already stopped"
  fi
  rm -f "$RUN_DIR/$name.pid"
}

# The PostgreSQL server binaries (initdb, pg_ctl): Debian's newest, else $PATH.
pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [[ -n "$dir" ]]; then echo "$dir/$1"; else command -v "$1"; fi
}

# PostgreSQL refuses to run as root: as root, run it as `postgres`.
as_pg_owner() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Prints the DATABASE_URL the replicas use, starting a private server if
# nothing answers.
database_url() {
  if [[ -n "${DATABASE_URL:-}" ]]; then echo "$DATABASE_URL"; return; fi
  local host=127.0.0.1 port=${MACHINE_PG_PORT:-5432}
  if ! "$(pg_bin pg_isready)" -q -h "$host" -p "$port"; then
    port=$PRIVATE_PG_PORT
    local dir=$RUN_PATH/postgres
    if [[ ! -d "$dir/data" ]]; then
      mkdir -p "$dir"
      [[ $(id -u) -eq 0 ]] && chown postgres "$dir"
      as_pg_owner "$(pg_bin initdb)" -A trust -U postgres -D "$dir/data" >/dev/null
    fi
    if ! "$(pg_bin pg_isready)" -q -h "$host" -p "$port"; then
      as_pg_owner "$(pg_bin pg_ctl)" -w -D "$dir/data" -l "$dir/server.log" \
        -o "-p $port -k $dir -c listen_addresses=$host" start >/dev/null
      echo "private PostgreSQL on $host:$port (data in $dir)" >&2
    fi
  fi
  local url="postgres://postgres@$host:$port"
  if ! psql "$url/postgres" -Atqc "SELECT 1 FROM pg_database WHERE datname = '$DATABASE_NAME'" | grep -q 1; then
    psql "$url/postgres" -qc "CREATE DATABASE $DATABASE_NAME" >/dev/null
  fi
  echo "$url/$DATABASE_NAME"
}

start_nginx() {
  local prefix=$RUN_PATH/nginx upstreams="" i user=""
  mkdir -p "$prefix"
  for i in $(seq 1 "$REPLICAS"); do
    upstreams+="        server 127.0.0.1:$((REPLICA_BASE_PORT + i)) max_fails=1 fail_timeout=1s;"$'\n'
  done
  [[ $(id -u) -eq 0 ]] && user="user root;"
  local ssl="" tls=""
  if [[ "${TLS:-}" == 1 ]]; then
    ssl=" ssl"
    tls="ssl_certificate $RUN_PATH/tls/nginx.pem; ssl_certificate_key $RUN_PATH/tls/nginx-key.pem; ssl_protocols TLSv1.2 TLSv1.3;"
  fi
  sed -e "s|@PREFIX@|$prefix|g" -e "s|@PORT@|$ORDER_PORT|g" -e "s|@USER@|$user|" -e "s|@SSL@|$ssl|" -e "s|@TLS@|$tls|" \
    deploy/nginx/replicas.conf.in | awk -v ups="${upstreams%$'\n'}" '{ if ($0 == "@UPSTREAMS@") print ups; else print }' \
    >"$prefix/nginx.conf"
  local nginx; nginx=$(command -v nginx || echo /usr/sbin/nginx)
  "$nginx" -p "$prefix" -c "$prefix/nginx.conf" -t -q
  "$nginx" -p "$prefix" -c "$prefix/nginx.conf"
  cp "$prefix/nginx.pid" "$RUN_DIR/nginx.pid"
  wait_healthy nginx "$SCHEME://127.0.0.1:$ORDER_PORT"
  echo "nginx listening on $SCHEME://localhost:$ORDER_PORT in front of $REPLICAS replicas"
}

stop_private_pg() {
  local dir=$RUN_PATH/postgres
  if [[ -f "$dir/data/postmaster.pid" ]]; then
    as_pg_owner "$(pg_bin pg_ctl)" -w -D "$dir/data" stop >/dev/null && echo "private PostgreSQL stopped"
  fi
}

replica_names() { for i in $(seq 1 "$REPLICAS"); do echo "order-service-$i"; done; }

any_running() {
  local name
  for name in payment-service order-service $(replica_names) nginx; do running "$name" && return 0; done
  return 1
}

# The admin token and payment's service key: the variable's value if set,
# else a new random one each time the services start from stopped (kept
# while any runs, so `make run` twice does not change it under them). Both
# are written to run/ (0600) for every make target to read, and exported.
secret() { # VAR file
  local var=$1 file=$RUN_DIR/$2
  if [[ -n "${!var:-}" ]]; then
    (umask 077; printf '%s\n' "${!var}" >"$file")
  elif ! any_running || [[ ! -s "$file" ]]; then
    (umask 077; head -c 24 /dev/urandom | base64 | tr '+/' '-_' >"$file")
  fi
  chmod 600 "$file"
  export "$var=$(cat "$file")"
}

secrets() {
  secret ADMIN_TOKEN admin-token
  secret PAYMENT_API_KEY payment-api-key
}

# TLS=1: the certificates (made or renewed), and the mark other targets read.
tls_mode() {
  if [[ "${TLS:-}" == 1 ]]; then
    if any_running && [[ ! -f "$RUN_DIR/tls.on" ]]; then echo "services run without TLS: make stop first" >&2; exit 1; fi
    scripts/tls-certs.sh "$TLS_DIR"
    touch "$RUN_DIR/tls.on"
  else
    if any_running && [[ -f "$RUN_DIR/tls.on" ]]; then echo "services run with TLS (make run-tls): make stop first" >&2; exit 1; fi
    rm -f "$RUN_DIR/tls.on"
  fi
}

# While `make observe` runs the collector, every start exports to it.
if [[ -f "$RUN_DIR/observe.env" ]]; then
  set -a
  source "$RUN_DIR/observe.env"
  set +a
fi

case "${1:-}" in
  secrets)
    # make up: the compose stack's secrets, in the same files.
    mkdir -p "$RUN_DIR"
    secrets
    ;;
  restart-running)
    # make observe / observe-down: the services that run pick up the change.
    if running order-service; then
      "$0" stop >/dev/null
      TLS=${TLS:-} "$0" start
    elif running nginx; then
      "$0" stop >/dev/null
      TLS=${TLS:-} "$0" start-replicas
    fi
    ;;
  start-replicas)
    mkdir -p "$RUN_DIR" "$LOG_DIR"
    if running order-service; then echo "order-service (make run) is on port $ORDER_PORT: make stop first" >&2; exit 1; fi
    secrets
    tls_mode
    url=$(database_url)
    start_one payment-service "$PAYMENT_PORT" PAYMENT_LEDGER_PATH="${PAYMENT_LEDGER_PATH:-$RUN_DIR/payment-ledger.jsonl}" \
      OTEL_SERVICE_NAME=payment-service "${PAYMENT_TLS_ENV[@]}"
    for i in $(seq 1 "$REPLICAS"); do
      # The binary is order-service; the pid file and log are the replica's.
      name=order-service-$i
      if running "$name"; then echo "$name already running"; continue; fi
      # nginx terminates TLS; it and the replicas talk plain HTTP on
      # loopback, and the replicas believe its X-Forwarded-For.
      env PORT=$((REPLICA_BASE_PORT + i)) DATABASE_URL="$url" OTEL_SERVICE_NAME=order-service \
        PAYMENT_SERVICE_URL="${PAYMENT_SERVICE_URL:-$SCHEME://127.0.0.1:$PAYMENT_PORT}" \
        PAYMENT_ADMIN_TOKEN="$ADMIN_TOKEN" TRUSTED_PROXIES=127.0.0.1 "${ORDER_TO_PAYMENT_ENV[@]}" \
        nohup "$BIN/order-service" >>"$LOG_DIR/$name.log" 2>&1 &
      echo $! >"$RUN_DIR/$name.pid"
      wait_healthy "$name" "http://127.0.0.1:$((REPLICA_BASE_PORT + i))"
      echo "$name listening on http://localhost:$((REPLICA_BASE_PORT + i)) (log $LOG_DIR/$name.log)"
    done
    running nginx && echo "nginx already running" || start_nginx
    echo "orders and keys in $url"
    echo "admin token in $RUN_DIR/admin-token (make targets read it)"
    ;;
  start)
    if running nginx; then echo "the replicas (make run-replicas) are on port $ORDER_PORT: make stop first" >&2; exit 1; fi
    mkdir -p "$RUN_DIR" "$LOG_DIR"
    secrets
    tls_mode
    start_one payment-service "$PAYMENT_PORT" PAYMENT_LEDGER_PATH="${PAYMENT_LEDGER_PATH:-$RUN_DIR/payment-ledger.jsonl}" \
      OTEL_SERVICE_NAME=payment-service "${PAYMENT_TLS_ENV[@]}"
    # The dashboard's fault controls: both services share make run's token.
    start_one order-service "$ORDER_PORT" PAYMENT_SERVICE_URL="${PAYMENT_SERVICE_URL:-$SCHEME://127.0.0.1:$PAYMENT_PORT}" \
      PAYMENT_ADMIN_TOKEN="$ADMIN_TOKEN" \
      OTEL_SERVICE_NAME=order-service "${ORDER_TLS_ENV[@]}" "${ORDER_TO_PAYMENT_ENV[@]}"
    echo "admin token in $RUN_DIR/admin-token (make targets read it)"
    ;;
  stop)
    said=$(
      stop_one nginx
      for name in order-service $(replica_names); do stop_one "$name"; done
      stop_one payment-service
      stop_private_pg
    )
    rm -f "$RUN_DIR/tls.on"
    echo "${said:-nothing to stop: make run (or make run-replicas) starts the services}"
    ;;
  status)
    for name in payment-service order-service $(replica_names) nginx; do
      if running "$name"; then echo "$name running (pid $(cat "$RUN_DIR/$name.pid"))"; else echo "$name not running"; fi
    done
    ;;
  *)
    echo "usage: $0 start|start-replicas|stop|status|restart-running|secrets" >&2
    exit 2
    ;;
esac
