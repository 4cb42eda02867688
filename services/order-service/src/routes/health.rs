use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use common::problem::Problem;

use crate::store::OrderStore;

/// Liveness: the process answers HTTP.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "healthy" }))
}

/// Readiness: the store can be reached, so an order can be taken.
pub async fn ready(store: web::Data<dyn OrderStore>) -> HttpResponse {
    match store.ping().await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })),
        Err(e) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "Not ready",
            e.to_string(),
        )
        .to_response(),
    }
}
