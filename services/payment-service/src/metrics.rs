//! payment-service's metrics (names in `observability::metric_names`).

use actix_web::{HttpResponse, web};
use observability::metric_names as names;
use observability::metrics::{HttpMetrics, counter_vec, exposition, gauge};
use prometheus::{IntCounterVec, IntGauge, Registry};

use crate::state::AppState;

#[derive(Clone)]
pub struct PaymentMetrics {
    pub registry: Registry,
    pub http: HttpMetrics,
    pub charges: IntCounterVec,
    pub faults: IntCounterVec,
    pub ledger_charges: IntGauge,
}

impl Default for PaymentMetrics {
    fn default() -> Self {
        let r = Registry::new();
        observability::metrics::register_span_counters(&r);
        let metrics = Self {
            http: HttpMetrics::new(&r),
            charges: counter_vec(
                &r,
                names::CHARGES,
                "Charge requests, by result (created, replayed, declined, rejected, deadline_exceeded, rate_limited, error, failed_after_charge).",
                &["result"],
            ),
            faults: counter_vec(
                &r,
                names::FAULTS_INJECTED,
                "Faults injected, by kind (delay, error, rate_limit, fail_after_charge).",
                &["fault"],
            ),
            ledger_charges: gauge(&r, names::LEDGER_CHARGES, "Charges in the ledger."),
            registry: r,
        };
        // Known label values start at zero, so `rate()` sees their first event.
        for result in [
            "created",
            "replayed",
            "declined",
            "rejected",
            "deadline_exceeded",
            "rate_limited",
            "error",
            "failed_after_charge",
        ] {
            metrics.charges.with_label_values(&[result]);
        }
        for fault in ["delay", "error", "rate_limit", "fail_after_charge"] {
            metrics.faults.with_label_values(&[fault]);
        }
        metrics
    }
}

/// `GET /metrics`.
/// The Prometheus text exposition.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "probes",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")),
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let metrics = &state.metrics;
    metrics.ledger_charges.set(state.ledger.charges() as i64);
    exposition(&metrics.registry)
}
