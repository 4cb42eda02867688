//! `GET /metrics`: the ledger's gauges refreshed, then the Prometheus text
//! exposition.

use actix_web::{HttpResponse, web};
use observability::metrics::exposition;

use crate::state::AppState;

/// `GET /metrics`: the Prometheus text exposition.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "probes",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")),
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let metrics = &state.metrics;
    metrics.ledger_charges.set(state.ledger.charges() as i64);
    if let Some(writes) = state.ledger.write_stats() {
        let read =
            |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed) as i64;
        metrics.ledger_syncs.set(read(&writes.syncs));
        metrics
            .ledger_synced_charges
            .set(read(&writes.synced_charges));
    }
    exposition(&metrics.registry)
}
