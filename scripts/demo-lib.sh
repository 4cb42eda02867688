# Shared by the demonstrations (scripts/demo.sh, scripts/demo-breaker.sh):
# each starts the native services (make run) from a known state, with the
# settings it needs, waits on what the services report rather than on
# guessed sleeps, and leaves them as `make run` starts them, faults
# cleared. Sourced, not run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ORDER_URL=${ORDER_URL:-http://localhost:8080}
PAYMENT_URL=${PAYMENT_URL:-http://localhost:8081}
# One admin token for the whole demo, through every restart: the one the
# running services have if any, else a new one (services.sh writes it to
# run/admin-token for the make targets).
if [[ -z "${ADMIN_TOKEN:-}" ]]; then
  if scripts/services.sh status | grep -q ' running (pid' && [[ -s run/admin-token ]]; then
    ADMIN_TOKEN=$(cat run/admin-token)
  else
    ADMIN_TOKEN=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_')
  fi
fi
export ADMIN_TOKEN
LOADGEN=target/release/loadgen
MARKS=run/marks
REPORTS=reports
auth=(-H "Authorization: Bearer $ADMIN_TOKEN")
mkdir -p run "$REPORTS"

say() { printf '\n\033[1m→ %s\033[0m\n' "$*"; }
# Where to watch it live: the token survives the demo's restarts.
dashboard() {
  printf '\033[36m  ▸ live: %s/admin/dashboard (token: run/admin-token)\033[0m\n' "$ORDER_URL"
}
# What to look at, set apart from the output.
look() { printf '\033[36m  ▸ %s\033[0m\n' "$*"; }

now_ms() { python3 -c 'import time; print(int(time.time() * 1000))'; }

# Sets payment's faults and marks the change for loadgen's timeline, as the
# Makefile's fault-* targets do. $1: the faults as JSON; $2: the label.
faults() {
  # Timed as the request leaves: the mark never lands after its effect.
  local at
  at=$(now_ms)
  curl -fsS -X PUT "$PAYMENT_URL/admin/faults" "${auth[@]}" -H "Content-Type: application/json" -d "$1" >/dev/null
  echo "$at ${2:-faults $1}" >>"$MARKS"
}

breaker_field() { # field of GET /admin/breaker
  curl -fsS "$ORDER_URL/admin/breaker" "${auth[@]}" |
    python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"
}

wait_for() { # breaker state, within seconds
  local deadline=$((SECONDS + $2))
  until [[ "$(breaker_field state)" == "$1" ]]; do
    if ((SECONDS >= deadline)); then echo "the breaker did not reach $1 within $2 s" >&2; exit 1; fi
    sleep 0.1
  done
}

# Restarts the services of `make run` with the given VAR=value settings on
# top of the defaults, faults cleared.
restart() {
  scripts/services.sh stop >/dev/null
  env "$@" scripts/services.sh start | sed 's/^/  /'
  faults '{}' "faults cleared"
}

# Prints a command as a reader would type it (quoted where the shell needs
# it; on stderr, out of the way of pipes), then runs it.
shown() {
  local words=() arg
  for arg in "$@"; do
    [[ "$arg" == "$LOADGEN" ]] && arg=loadgen
    if [[ "$arg" =~ [^A-Za-z0-9_./:=@%+,-] ]]; then arg="'${arg//\'/\'\\\'\'}'"; fi
    words+=("$arg")
  done
  printf '\033[2m$ %s\033[0m\n' "${words[*]}" >&2
  "$@"
}

# Orders the reconciler still has to settle.
pending() { curl -fsS "$ORDER_URL/metrics" | awk '/^reconciler_pending_orders /{print int($2)}'; }

# Heals payment, then waits for the reconciler to settle every pending
# order (the in-memory store would lose them at the restart that ends the
# demonstration), and shows what it did.
settle() {
  faults '{}' "faults cleared"
  local started=$SECONDS
  say "payment healthy again: the reconciler settles the $(pending) pending orders"
  while (($(pending) > 0)) && ((SECONDS - started < 120)); do sleep 0.5; done
  echo "pending orders: $(pending), after $((SECONDS - started)) s"
  curl -fsS "$ORDER_URL/metrics" | grep -E '^reconcile_attempts_total\{outcome="(completed|failed|still_pending)"'
}

background=()
# At exit, whatever happened: background jobs stopped, services as `make
# run` starts them, faults cleared.
leave_clean() {
  if ((${#background[@]})); then
    kill "${background[@]}" 2>/dev/null || true
    wait "${background[@]}" 2>/dev/null || true
  fi
  echo
  echo "leaving the services as make run starts them, faults cleared:"
  restart
}

watch_breaker() { # follows the breaker in the background, as make watch does
  python3 -u scripts/watch.py "$ORDER_URL" &
  background+=($!)
  # Its first line is the breaker's state: then it is following.
  sleep 0.5
}

# order-service's answers to POST /orders by status, from its /metrics.
answers() {
  curl -fsS "$ORDER_URL/metrics" | python3 -c '
import re, sys
counts = {}
for line in sys.stdin:
    m = re.match(r"http_server_requests_total\{(.*)\} (\d+)", line)
    if m and "route=\"/orders\"" in m.group(1) and "method=\"POST\"" in m.group(1):
        status = re.search(r"status=\"(\d+)\"", m.group(1)).group(1)
        counts[status] = counts.get(status, 0) + int(m.group(2))
print(", ".join(f"{s}: {n}" for s, n in sorted(counts.items())))
'
}
