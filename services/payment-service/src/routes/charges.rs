//! `GET /charges/{idempotency_key}`: what was charged under a key, so a
//! caller that lost a response can find out without charging again.

use actix_web::{HttpResponse, web};
use common::domain::IdempotencyKey;
use common::openapi::Unauthorized;
use common::problem::Problem;

use crate::state::AppState;

/// What was charged under a key.
#[utoipa::path(
    get,
    path = "/charges/{key}",
    tag = "audit",
    security(("admin_token" = [])),
    params(("key" = IdempotencyKey, Path, description = "The charge's Idempotency-Key")),
    responses(
        (status = 200, description = "The charge", body = crate::ledger::Charge),
        (status = 400, description = "Not a valid key", body = Problem, content_type = "application/problem+json"),
        (status = 401, response = Unauthorized),
        (status = 404, description = "Nothing charged under this key (or no ADMIN_TOKEN configured)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_charge(key: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    let key = match IdempotencyKey::parse(&key) {
        Ok(key) => key,
        Err(e) => return Problem::bad_request(e.to_string()).to_response(),
    };
    match state.ledger.lookup(&key) {
        Some(charge) => HttpResponse::Ok().json(charge),
        None => Problem::not_found(format!("no charge under key {key}")).to_response(),
    }
}
