//! order-service's metrics (names in `observability::metric_names`).
//! Counters are bumped where things happen; the gauges that mirror actor
//! state are refreshed from the actors when `/metrics` is scraped
//! (the `GET /metrics` route).

use actors::circuit_breaker::{self, Transition};
use observability::metric_names as names;
use observability::metrics::{HttpMetrics, counter, counter_vec, gauge};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

#[derive(Clone)]
pub struct OrderMetrics {
    pub registry: Registry,
    pub http: HttpMetrics,
    pub orders: IntCounterVec,
    /// `POST /orders` by client name and decision (`limits`).
    pub admissions: IntCounterVec,
    pub attempts: IntCounterVec,
    pub retries: IntCounter,
    pub retry_budget_exhausted: IntCounter,
    pub breaker: BreakerMetrics,
    pub bulkhead: BulkheadMetrics,
    pub keys: KeyMetrics,
    pub reconciler: ReconcilerMetrics,
}

#[derive(Clone)]
pub struct BreakerMetrics {
    pub state: IntGauge,
    pub transitions: IntCounterVec,
}

#[derive(Clone)]
pub struct BulkheadMetrics {
    pub in_use: IntGauge,
    pub waiting: IntGauge,
    pub max: IntGauge,
    pub overloaded: IntGauge,
    pub rejected: IntCounterVec,
}

#[derive(Clone)]
pub struct KeyMetrics {
    pub hits: IntCounter,
    pub conflicts: IntCounterVec,
    pub entries: IntGauge,
    /// Keys held by a request in flight: one that stays up while traffic is
    /// quiet is a key nobody will release.
    pub in_flight: IntGauge,
}

#[derive(Clone)]
pub struct ReconcilerMetrics {
    pub pending: IntGauge,
    pub attempts: IntCounterVec,
}

impl Default for OrderMetrics {
    fn default() -> Self {
        let r = Registry::new();
        observability::metrics::register_span_counters(&r);
        let metrics = Self {
            http: HttpMetrics::new(&r),
            orders: counter_vec(
                &r,
                names::ORDERS,
                "Orders answered, by resulting status.",
                &["status"],
            ),
            admissions: counter_vec(
                &r,
                names::ORDER_ADMISSIONS,
                "POST /orders by client (its name, per-address, or unknown) and decision (admitted, limited, unauthenticated; untracked: a new address let in while the table of addresses is full); only while limits are on.",
                &["client", "decision"],
            ),
            attempts: counter_vec(
                &r,
                names::PAYMENT_ATTEMPTS,
                "Payment attempts, by outcome (charged, declined, the status code, timeout, connection, circuit_open, bulkhead_full).",
                &["outcome"],
            ),
            retries: counter(
                &r,
                names::PAYMENT_RETRIES,
                "Payment attempts that were retries.",
            ),
            retry_budget_exhausted: counter(
                &r,
                names::RETRY_BUDGET_EXHAUSTED,
                "Retries refused by the retry budget.",
            ),
            breaker: BreakerMetrics::new(&r),
            bulkhead: BulkheadMetrics::new(&r),
            keys: KeyMetrics::new(&r),
            reconciler: ReconcilerMetrics::new(&r),
            registry: r,
        };
        metrics.start_known_series_at_zero();
        metrics
    }
}

impl BreakerMetrics {
    fn new(r: &Registry) -> Self {
        Self {
            state: gauge(
                r,
                names::CB_STATE,
                "Circuit breaker state: 0 closed, 1 open, 2 half-open.",
            ),
            transitions: counter_vec(
                r,
                names::CB_TRANSITIONS,
                "Circuit breaker transitions, by from and to state.",
                &["from", "to"],
            ),
        }
    }
}

impl BulkheadMetrics {
    fn new(r: &Registry) -> Self {
        Self {
            in_use: gauge(r, names::BULKHEAD_IN_USE, "Bulkhead permits in use."),
            waiting: gauge(
                r,
                names::BULKHEAD_WAITING,
                "Callers waiting for a bulkhead permit.",
            ),
            max: gauge(r, names::BULKHEAD_MAX, "Bulkhead permits in all."),
            overloaded: gauge(
                r,
                names::BULKHEAD_OVERLOADED,
                "1 while the bulkhead sheds: every wait cut to the overload wait.",
            ),
            rejected: counter_vec(
                r,
                names::BULKHEAD_REJECTED,
                "Attempts refused by the bulkhead, by reason.",
                &["reason"],
            ),
        }
    }
}

impl KeyMetrics {
    fn new(r: &Registry) -> Self {
        Self {
            hits: counter(
                r,
                names::IDEMPOTENCY_HITS,
                "Requests answered from a stored response (Idempotent-Replayed).",
            ),
            conflicts: counter_vec(
                r,
                names::IDEMPOTENCY_CONFLICTS,
                "Idempotency-Key refusals, by kind (in_flight, mismatch, full).",
                &["kind"],
            ),
            entries: gauge(
                r,
                names::IDEMPOTENCY_ENTRIES,
                "Idempotency-Keys remembered.",
            ),
            in_flight: gauge(
                r,
                names::IDEMPOTENCY_IN_FLIGHT,
                "Idempotency-Keys held by a request in flight now.",
            ),
        }
    }
}

impl ReconcilerMetrics {
    fn new(r: &Registry) -> Self {
        Self {
            pending: gauge(
                r,
                names::RECONCILER_PENDING,
                "Orders whose payment outcome is unknown, tracked by the reconciler.",
            ),
            attempts: counter_vec(
                r,
                names::RECONCILE_ATTEMPTS,
                "Reconciler re-drives, by outcome (completed, failed, still_pending, already_settled, claimed_elsewhere, store_error).",
                &["outcome"],
            ),
        }
    }
}

impl OrderMetrics {
    /// Every known label value exists from the start, at zero: a series that
    /// appears only at its first event makes `rate()` miss that event.
    fn start_known_series_at_zero(&self) {
        for status in ["completed", "failed", "pending"] {
            self.orders.with_label_values(&[status]);
        }
        for outcome in [
            "charged",
            "declined",
            "timeout",
            "connection",
            "circuit_open",
            "bulkhead_full",
        ] {
            self.attempts.with_label_values(&[outcome]);
        }
        for (from, to) in [
            ("closed", "open"),
            ("open", "half_open"),
            ("half_open", "closed"),
            ("half_open", "open"),
        ] {
            self.breaker.transitions.with_label_values(&[from, to]);
        }
        for reason in [
            "queue_full",
            "overloaded",
            "no_time",
            "budget_exhausted",
            "unavailable",
        ] {
            self.bulkhead.rejected.with_label_values(&[reason]);
        }
        for kind in ["in_flight", "mismatch", "full"] {
            self.keys.conflicts.with_label_values(&[kind]);
        }
        for outcome in [
            "completed",
            "failed",
            "still_pending",
            "already_settled",
            "claimed_elsewhere",
            "store_error",
        ] {
            self.reconciler.attempts.with_label_values(&[outcome]);
        }
    }

    /// For the breaker actor: every transition, counted and mirrored.
    pub fn transition_observer(&self) -> circuit_breaker::TransitionObserver {
        let (state, transitions) = (self.breaker.state.clone(), self.breaker.transitions.clone());
        Box::new(move |t: &Transition| {
            transitions
                .with_label_values(&[t.from.as_str(), t.to.as_str()])
                .inc();
            state.set(t.to.gauge());
        })
    }
}
