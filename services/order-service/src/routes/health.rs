use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use common::problem::Problem;

use crate::reliability::Reliability;
use crate::store::OrderStore;

/// Liveness: the process answers HTTP.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "healthy" }))
}

/// Readiness: the actors run and the store can be reached.
pub async fn ready(
    store: web::Data<dyn OrderStore>,
    reliability: web::Data<Reliability>,
) -> HttpResponse {
    let ready = if !reliability.running() {
        Err("the reliability actors are not running")
    } else if let Err(e) = store.ping().await {
        tracing::warn!(error = %e, "not ready: the order store does not answer");
        Err("the order store cannot be reached")
    } else {
        Ok(())
    };
    match ready {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })),
        Err(e) => {
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready", e).to_response()
        }
    }
}
