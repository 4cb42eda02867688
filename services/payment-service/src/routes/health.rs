use actix_web::HttpResponse;
use common::server::Health;

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
