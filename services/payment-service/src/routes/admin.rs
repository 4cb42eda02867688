//! `GET/PUT /admin/faults`: read and replace the injected faults at runtime.
//! A PUT body may name only some faults; the others become 0, so
//! `{"error_pct":30}` means "30 % errors and nothing else".

use actix_web::{HttpRequest, HttpResponse, web};
use common::body::json_body;
use common::openapi::{AdminOff, BodyTimeout, TooLarge, Unauthorized};
use common::problem::Problem;

use crate::error::AdminError;
use crate::faults::Faults;
use crate::state::AppState;

/// The faults injected now.
#[utoipa::path(
    get,
    path = "/admin/faults",
    tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The faults", body = Faults),
        (status = 401, response = Unauthorized),
        (status = 404, response = AdminOff),
    ),
)]
pub async fn get_faults(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.faults.current())
}

/// Replaces the faults; a fault not named becomes 0.
#[utoipa::path(
    put,
    path = "/admin/faults",
    tag = "admin",
    security(("admin_token" = [])),
    request_body(content = Faults, content_type = "application/json"),
    responses(
        (status = 200, description = "The faults now", body = Faults),
        (status = 400, description = "Malformed JSON, wrong content type or unknown field", body = Problem, content_type = "application/problem+json"),
        (status = 401, response = Unauthorized),
        (status = 404, response = AdminOff),
        (status = 408, response = BodyTimeout),
        (status = 413, response = TooLarge),
        (status = 422, description = "A value out of range", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn put_faults(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let faults = json_body::<Faults>(&req, payload)
        .await
        .map_err(AdminError::Body)?;
    state.faults.replace(faults).map_err(AdminError::Faults)?;
    tracing::info!(?faults, "faults replaced");
    Ok(HttpResponse::Ok().json(faults))
}
