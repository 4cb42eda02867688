#!/usr/bin/env bash
# One call to a service's admin API for the Makefile's fault-*, faults and
# breaker targets: the answer on stdout, or a line that says what to do and
# a non-zero exit — a stopped service is not an error to print as curl's.
#
# Usage: scripts/admin-call.sh GET|PUT URL [JSON]
set -uo pipefail
cd "$(dirname "$0")/.."
method=$1 url=$2 data=${3:-}
args=(-sS -X "$method" "$url" -H "Authorization: Bearer ${ADMIN_TOKEN:-}" -w '\n%{http_code}')
# make run-tls: trust its CA, present the operator's certificate.
[[ -f run/tls.on ]] && args+=(-K run/tls/curlrc)
[[ -n "$data" ]] && args+=(-H "Content-Type: application/json" -d "$data")
answer=$(curl "${args[@]}" 2>/dev/null)
status=$?
base=${url%%/admin*}
if ((status != 0)); then
  echo "nothing answers at $base (curl exit $status): start the services with make run (or make up)" >&2
  exit 1
fi
code=${answer##*$'\n'}
body=${answer%$'\n'*}
case "$code" in
  2??) echo "$body" ;;
  401) echo "$base refused the admin token (401): use the one make run wrote to run/admin-token, or set ADMIN_TOKEN" >&2; exit 1 ;;
  404) echo "$base has no admin API (404): it was started without ADMIN_TOKEN; start it with make run" >&2; exit 1 ;;
  *) echo "$base answered $code: $body" >&2; exit 1 ;;
esac
