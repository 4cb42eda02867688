#!/usr/bin/env bash
# `make fuzz`: both services' OpenAPI descriptions checked by
# openapi-spec-validator, then schemathesis against the real services with
# all its checks (no 5xx; status, body and headers as described; invalid
# input refused, valid input taken; auth enforced; 405 for other methods),
# a fixed seed and a bounded number of examples per operation.
#
# order-service runs with a client key (CLIENT_KEYS), as a deployment with
# client keys and rate limits would.
#
# Four runs, so that what one run's operator endpoints change cannot turn
# another's answers into 5xx: each service's public operations, then its
# /admin operations (which may force the breaker open, or make payment
# fail) on a fresh pair. The tools go into target/fuzz-venv, pinned.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/debug}
EXAMPLES=${FUZZ_EXAMPLES:-50}
SEED=${FUZZ_SEED:-20261126}
VENV=target/fuzz-venv
TOOLS=(schemathesis==4.32.5 openapi-spec-validator==0.9.0)
LOGS=target/fuzz-logs

if [[ ! -x $VENV/bin/st ]] || [[ "$(cat "$VENV/.pinned" 2>/dev/null)" != "${TOOLS[*]}" ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${TOOLS[@]}"
  echo "${TOOLS[*]}" >"$VENV/.pinned"
fi
mkdir -p "$LOGS"
chmod 700 "$LOGS"

export ADMIN_TOKEN=fuzz-admin-token PAYMENT_API_KEY=fuzz-payment-key
# order-service takes orders from one client key (read by the config
# file's POST /orders settings), at a rate the fuzzer does not reach.
export FUZZ_CLIENT_KEY=fuzz-client-key-0123456789
CLIENT_KEYS_FILE=$LOGS/client-keys
printf '%s fuzzer 1000/s:1000\n' "$FUZZ_CLIENT_KEY" >"$CLIENT_KEYS_FILE"
export OTEL_SDK_DISABLED=true RUST_LOG=warn BIND_ADDR=127.0.0.1
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

pids=()
stop_pair() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done; pids=(); }
trap stop_pair EXIT

start_pair() { # sets ORDER and PAYMENT
  local pay ord; pay=$(free_port); ord=$(free_port)
  PORT=$pay "$BIN/payment-service" >>"$LOGS/payment-service.log" 2>&1 & pids+=($!)
  PORT=$ord PAYMENT_SERVICE_URL=http://127.0.0.1:$pay PAYMENT_ADMIN_TOKEN=$ADMIN_TOKEN CLIENT_KEYS=$CLIENT_KEYS_FILE \
    "$BIN/order-service" >>"$LOGS/order-service.log" 2>&1 & pids+=($!)
  PAYMENT=http://127.0.0.1:$pay ORDER=http://127.0.0.1:$ord
  for url in "$PAYMENT" "$ORDER"; do
    for _ in $(seq 1 100); do curl -fsS -o /dev/null "$url/ready" 2>/dev/null || curl -fsS -o /dev/null "$url/health" 2>/dev/null && break; sleep 0.1; done
  done
}

fuzz() { # service run url args...
  local service=$1 name=$2 url=$3; shift 3
  echo "--- schemathesis: $name"
  "$VENV/bin/st" --config-file "scripts/fuzz/$service.toml" run "$url/openapi.json" \
    --checks all --seed "$SEED" --max-examples "$EXAMPLES" --no-color \
    --report junit --report-junit-path "$LOGS/$name.xml" "$@"
}

start_pair
echo "--- openapi-spec-validator"
for url in "$ORDER" "$PAYMENT"; do
  curl -fsS "$url/openapi.json" >"$LOGS/openapi-${url##*:}.json"
  "$VENV/bin/openapi-spec-validator" "$LOGS/openapi-${url##*:}.json"
done
fuzz order-service order-service "$ORDER" --exclude-path-regex '^/admin'
fuzz payment-service payment-service "$PAYMENT" --exclude-path-regex '^/admin'
stop_pair

start_pair
fuzz order-service order-service-admin "$ORDER" --include-path-regex '^/admin'
fuzz payment-service payment-service-admin "$PAYMENT" --include-path-regex '^/admin'
