//! `GET /metrics`: refreshes the gauges that mirror the actors' state, then
//! answers the Prometheus text exposition.

use actix_web::{HttpResponse, web};
use actors::{bulkhead, circuit_breaker, idempotency, reconciler};
use observability::metrics::exposition;

use crate::metrics::OrderMetrics;
use crate::reliability::Reliability;

/// `GET /metrics`: refreshes the actor gauges, then the text exposition.
/// The Prometheus text exposition.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "probes",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")),
)]
pub async fn metrics(
    metrics: web::Data<OrderMetrics>,
    reliability: web::Data<Reliability>,
) -> HttpResponse {
    let pipeline = &reliability.pipeline;
    if let Ok(Ok(status)) = pipeline.breaker.send(circuit_breaker::GetStatus).await {
        metrics.breaker.state.set(status.state.gauge());
    }
    if let Ok(Ok(status)) = pipeline.bulkhead.send(bulkhead::GetStatus).await {
        metrics.bulkhead.in_use.set(status.in_use as i64);
        metrics.bulkhead.waiting.set(status.waiting as i64);
        metrics.bulkhead.max.set(status.max as i64);
        metrics
            .bulkhead
            .overloaded
            .set(i64::from(status.overloaded));
    }
    if let Ok(Ok(stats)) = reliability.idempotency.send(idempotency::GetStats).await {
        metrics.keys.entries.set(stats.entries as i64);
        metrics.keys.in_flight.set(stats.in_flight as i64);
    }
    if let Ok(Ok(pending)) = reliability.reconciler.send(reconciler::PendingCount).await {
        metrics.reconciler.pending.set(pending as i64);
    }
    exposition(&metrics.registry)
}
