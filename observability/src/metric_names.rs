//! Every metric name, in one place (the dashboard and its test read them).
//! Prometheus conventions: base units in the name, counters end in `_total`.

pub const HTTP_REQUESTS: &str = "http_server_requests_total";
pub const HTTP_DURATION: &str = "http_server_request_duration_seconds";

pub const ORDERS: &str = "orders_total";
pub const ORDER_ADMISSIONS: &str = "order_admissions_total";
pub const PAYMENT_ATTEMPTS: &str = "payment_attempts_total";
pub const PAYMENT_RETRIES: &str = "payment_retries_total";
pub const RETRY_BUDGET_EXHAUSTED: &str = "payment_retry_budget_exhausted_total";
pub const CB_STATE: &str = "cb_state";
pub const CB_TRANSITIONS: &str = "cb_transitions_total";
pub const BULKHEAD_IN_USE: &str = "bulkhead_in_use";
pub const BULKHEAD_WAITING: &str = "bulkhead_waiting";
pub const BULKHEAD_MAX: &str = "bulkhead_max";
pub const BULKHEAD_OVERLOADED: &str = "bulkhead_overloaded";
pub const BULKHEAD_REJECTED: &str = "bulkhead_rejected_total";
pub const IDEMPOTENCY_HITS: &str = "idempotency_hits_total";
pub const IDEMPOTENCY_CONFLICTS: &str = "idempotency_conflicts_total";
pub const IDEMPOTENCY_ENTRIES: &str = "idempotency_entries";
pub const IDEMPOTENCY_IN_FLIGHT: &str = "idempotency_keys_in_flight";
pub const RECONCILER_PENDING: &str = "reconciler_pending_orders";
pub const RECONCILE_ATTEMPTS: &str = "reconcile_attempts_total";

pub const CHARGES: &str = "payment_charges_total";
pub const VOIDS: &str = "payment_voids_total";
pub const FAULTS_INJECTED: &str = "payment_faults_injected_total";
pub const LEDGER_CHARGES: &str = "payment_ledger_charges";
pub const LEDGER_SYNCS: &str = "payment_ledger_syncs";
pub const LEDGER_SYNCED_CHARGES: &str = "payment_ledger_synced_charges";

pub const SPANS_EXPORTED: &str = "otel_spans_exported_total";
pub const SPANS_DROPPED: &str = "otel_spans_dropped_total";
