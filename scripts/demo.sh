#!/usr/bin/env bash
# `make demo-N`: the seven demonstrations of docs/demo.md, one command each.
# Each restarts the native services (make run) with the settings it needs,
# faults cleared; runs its scenario, waiting on the breaker's reported state
# or an order's status instead of guessed times; prints what to look at;
# and leaves the services as `make run` starts them, faults cleared.
# Timelines go to reports/demo-N.svg (untracked); nothing tracked is written.
#
# Usage: scripts/demo.sh 1..7
source "$(dirname "$0")/demo-lib.sh"

order_body='{"merchant_id":"merchant_123","amount":99.99,"currency":"USD"}'
post_order() { # extra curl arguments…
  curl -sS -X POST "$ORDER_URL/orders" -H 'Content-Type: application/json' "$@"
}
json_field() { python3 -c "import json, sys; print(json.load(sys.stdin).get('$1'))"; }

demo_1() {
  say "1. Baseline: make run's settings, payment healthy"
  restart
  shown "$LOADGEN" -url "$ORDER_URL/orders" -n 1000 -c 50 -idempotent --audit "$PAYMENT_URL" \
    --breaker "$ORDER_URL" --timeline "$REPORTS/demo-1.svg"
  look "every 201 has exactly one charge (the audit) and the breaker stayed closed"
  look "the latency is the wait for one of the bulkhead's 10 permits: ~25 ms calls, 50 clients"
  look "Jaeger (make observe): one trace per order, POST /orders → createOrder → callPayment → POST /charge in payment-service"
}

demo_2() {
  say "2. Timeout budget: payment 300 ms late fits the 500 ms budget"
  restart CB_OPEN_MS=5000
  faults '{"delay_ms":300}' "payment 300 ms late"
  shown "$LOADGEN" -url "$ORDER_URL/orders" -n 200 -c 10 --timeline "$REPORTS/demo-2.svg"
  look "every order 201, each ~330 ms: slower, never failing"

  say "payment 600 ms late: beyond the budget (the breaker is watched below)"
  faults '{"delay_ms":600}' "payment 600 ms late"
  watch_breaker
  local answer id
  answer=$(post_order -d "$order_body" -w '\n%{http_code} in %{time_total}s')
  printf '%s\n' "$answer"
  id=$(head -n 1 <<<"$answer" | json_field order_id)
  look "504 well before 500 ms: each attempt sent the budget it had left, and payment refused at once what it could not finish"
  say "GET /orders/$id"
  curl -sS "$ORDER_URL/orders/$id" && echo
  look "pending: the outcome is unknown, so the order is neither failed nor charged twice later"

  say "payment fast again: the reconciler re-drives the order under its payment key"
  faults '{}' "faults cleared"
  local started=$SECONDS status=pending
  while [[ "$status" == pending ]] && ((SECONDS - started < 60)); do
    sleep 0.2
    status=$(curl -sS "$ORDER_URL/orders/$id" | json_field status)
  done
  echo "order $id $status after $((SECONDS - started)) s"
  curl -sS "$ORDER_URL/orders/$id" && echo
  if (($(breaker_field transitions) > 0)); then
    look "its refused attempts and the first re-drives opened the breaker (above): a half-open trial charged it after the open time (5 s here, 30 s by default)"
  else
    look "its refused attempts did not reach the breaker's thresholds (no transition above): the reconciler's next re-drive charged it"
  fi
  look "one charge for the order, whatever the number of attempts: every one carries its payment key"
}

demo_3() {
  say "3. Retries: 30 % of charges fail with 500 (the breaker's rules out of reach: retries alone)"
  restart CB_CONSECUTIVE_FAILURES=1000 CB_MIN_CALLS=1000000
  faults '{"error_pct":30}' "30 % errors"
  shown "$LOADGEN" -url "$ORDER_URL/orders" -n 1000 -c 10 -idempotent --audit "$PAYMENT_URL" \
    --breaker "$ORDER_URL" --timeline "$REPORTS/demo-3.svg"
  if (($(breaker_field transitions) > 0)); then
    echo "the breaker changed state: this demonstration is of retries alone" >&2
    exit 1
  fi
  say "order-service's retry counters"
  curl -fsS "$ORDER_URL/metrics" | grep -E '^payment_(retries|attempts|retry_budget)'
  look "without retries 70 % would succeed; with up to 3 attempts most do, and the retry budget refused the rest"
  look "no duplicate charge: every attempt of an order carries the same payment key"
  settle
  look "the 502s were left pending, not failed: payment's 500 does not say whether it charged"
}

demo_4() {
  say "4. Circuit breaker: open and recovery (open time 10 s)"
  restart CB_OPEN_MS=10000
  watch_breaker
  "$LOADGEN" -url "$ORDER_URL/orders" --rate 50 --duration 30s -c 20 -idempotent --audit "$PAYMENT_URL" \
    --breaker "$ORDER_URL" --marks "$MARKS" --timeline "$REPORTS/demo-4.svg" >run/demo-4.out 2>&1 &
  local load=$!
  background+=("$load")
  echo "(loadgen: 50 orders/s for 30 s in the background; its report follows at the end)"
  sleep 3
  say "payment fails every charge"
  faults '{"error_pct":100}' "100 % errors"
  wait_for open 10
  say "GET /admin/breaker"
  curl -fsS "$ORDER_URL/admin/breaker" "${auth[@]}" && echo
  look "open: orders get 503 at once with Retry-After, payment receives nothing"
  sleep 2
  say "payment healthy again, long before the open time is over"
  faults '{}' "faults cleared"
  wait_for closed 20
  say "GET /admin/breaker"
  curl -fsS "$ORDER_URL/admin/breaker" "${auth[@]}" && echo
  wait "$load"
  cat run/demo-4.out
  look "the timeline ($REPORTS/demo-4.svg): the band turns red when the breaker opens, 5xx replaces 2xx, then 2xx again once the half-open trials closed it"
}

demo_5() {
  say "5. Idempotency: the same key twice"
  restart
  local key
  key="order-$(now_ms)"
  for _ in 1 2; do
    shown curl -sS -i -X POST "$ORDER_URL/orders" -H 'Content-Type: application/json' \
      -H "Idempotency-Key: $key" -d "$order_body" | grep -iE '^(HTTP|location|idempotent-replayed)|^\{'
  done
  look "one order: the second answer is the first one replayed (Idempotent-Replayed: true)"
  say "the same key with another body"
  post_order -H "Idempotency-Key: $key" -d '{"merchant_id":"merchant_123","amount":5.00,"currency":"USD"}' \
    -w '\n%{http_code}\n'
  look "422: a key names one request; reusing it for another is refused"

  say "payment charges, then answers 500, half of the time; 20 % of requests are sent twice"
  restart CB_CONSECUTIVE_FAILURES=1000 CB_MIN_CALLS=1000000
  faults '{"fail_after_charge_pct":50}' "50 % 500 after the charge"
  shown "$LOADGEN" -url "$ORDER_URL/orders" -n 500 -c 10 --replay-pct 20 --audit "$PAYMENT_URL" \
    --timeline "$REPORTS/demo-5.svg"
  look "no order charged twice, no replay with another order_id"
  look "the charges without a 201 belong to orders answered 502 after payment charged them: still pending, or already completed by the reconciler"
  settle
  look "each completed under the payment key of its first attempt: payment replays the charge it made, and charges nothing twice"
}

demo_6() {
  say "6. Bulkhead: 100 clients on 10 permits, then orders arriving at twice what they serve"
  restart
  shown "$LOADGEN" -url "$ORDER_URL/orders" -n 1000 -c 100 -idempotent --breaker "$ORDER_URL" \
    --timeline "$REPORTS/demo-6.svg"
  look "every client served: each waits ~250 ms of its 500 ms budget, as long as the budget can still cover a call"
  shown "$LOADGEN" -url "$ORDER_URL/orders" --rate 700 --duration 5s -c 1000 -idempotent \
    --breaker "$ORDER_URL" --timeline "$REPORTS/demo-6-open.svg"
  look "the queue keeps growing: the bulkhead sheds, cutting every wait to 100 ms; admitted orders keep their latency, the rest get 503 \"Bulkhead limit reached\", nothing charged"
  say "GET /admin/breaker"
  curl -fsS "$ORDER_URL/admin/breaker" "${auth[@]}" && echo
  look "the breaker stays closed with 0 transitions: local overload is not a failure of payment"
}

demo_7() {
  say "7. Everything at once: 300 ms delay, 30 % errors, 10 % rate limiting; 30 orders/s (open time 3 s)"
  restart CB_OPEN_MS=3000
  watch_breaker
  faults '{"delay_ms":300,"error_pct":30,"rate_limit_pct":10}' "delay, errors, rate limits"
  shown "$LOADGEN" -url "$ORDER_URL/orders" --rate 30 --duration 30s -c 50 -idempotent --replay-pct 10 \
    --audit "$PAYMENT_URL" --breaker "$ORDER_URL" --marks "$MARKS" --timeline "$REPORTS/demo-7.svg" 2>/dev/null
  say "the breaker's transitions (order-service's /metrics)"
  curl -fsS "$ORDER_URL/metrics" | grep -E '^cb_transitions_total'
  look "the breaker opens, probes every 3 s, and closes when three trials in a row succeed; with 40 % of attempts failing it soon opens again: most orders are refused in a millisecond instead of piling onto a sick payment"
  look "replays compare where they can: an original refused by the open breaker leaves nothing to compare; a concurrent replay gets 409 while its original is in flight"
  look "what must hold holds: no duplicate charge, every 201 has its charge, no replay got another order"
  settle
}

case "${1:-}" in
  [1-7])
    trap leave_clean EXIT
    dashboard
    "demo_$1"
    ;;
  *)
    echo "usage: $0 1..7" >&2
    exit 2
    ;;
esac
