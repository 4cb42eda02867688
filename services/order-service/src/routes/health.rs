use actix_web::{HttpResponse, web};
use common::problem::Problem;
use common::server::Health;

use crate::error::OpsError;
use crate::reliability::Reliability;
use crate::store::OrderStore;

/// Liveness: the process answers HTTP.
#[utoipa::path(
    get,
    path = "/health",
    tag = "probes",
    responses((status = 200, description = "Alive", body = Health)),
)]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health::HEALTHY)
}

/// `GET /ready` when ready.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Ready {
    #[schema(example = "ready")]
    status: &'static str,
}

/// Readiness: the actors run and the store can be reached.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "probes",
    responses(
        (status = 200, description = "Ready", body = Ready),
        (status = 503, description = "An actor is down or the store cannot be reached", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn ready(
    store: web::Data<dyn OrderStore>,
    reliability: web::Data<Reliability>,
) -> Result<HttpResponse, OpsError> {
    if !reliability.running() {
        return Err(OpsError::NotReady("the reliability actors are not running"));
    }
    if let Err(e) = store.ping().await {
        tracing::warn!(error = %e, "not ready: the order store does not answer");
        return Err(OpsError::NotReady("the order store cannot be reached"));
    }
    Ok(HttpResponse::Ok().json(Ready { status: "ready" }))
}
