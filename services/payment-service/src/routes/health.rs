use actix_web::HttpResponse;

/// Liveness: the process answers HTTP.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "healthy" }))
}
