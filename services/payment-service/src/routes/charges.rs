//! `/charges/{idempotency_key}`: what was charged under a key, so a caller
//! that lost a response can find out without charging again; and its
//! void, so a caller that told its client "nothing was charged" without
//! being able to record that itself can make it true for good.

use actix_web::{HttpResponse, web};
use common::domain::IdempotencyKey;
use common::openapi::Unauthorized;
use common::problem::Problem;

use crate::error::{AdminError, ChargeError};
use crate::ledger::KeyEnd;
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
        (status = 404, description = "Nothing charged under this key (it may be voided; or no ADMIN_TOKEN configured)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_charge(
    key: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let key = IdempotencyKey::parse(&key).map_err(AdminError::BadKey)?;
    match state.ledger.end_of(&key) {
        Some(KeyEnd::Charged { charge }) => Ok(HttpResponse::Ok().json(charge)),
        Some(KeyEnd::Voided { .. }) => Err(AdminError::NoCharge { key, voided: true }),
        None => Err(AdminError::NoCharge { key, voided: false }),
    }
}

/// Voids a key unless it is charged, and answers how the key ended. Once
/// voided (durably, before this answers), every charge under the key is
/// refused with 409, however late it arrives. Idempotent: a second void
/// answers the first.
#[utoipa::path(
    post,
    path = "/charges/{key}/void",
    tag = "charges",
    security(("service_key" = [])),
    params(("key" = IdempotencyKey, Path, description = "The Idempotency-Key to void")),
    responses(
        (status = 200, description = "How the key ended: `voided` (never charged), or `charged` before the void arrived", body = KeyEnd),
        (status = 400, description = "Not a valid key", body = Problem, content_type = "application/problem+json"),
        (status = 401, response = Unauthorized),
        (status = 503, description = "The ledger could not record the void durably, or its write queue is full; nothing was voided", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds"))),
    ),
)]
pub async fn void(
    key: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ChargeError> {
    let key = IdempotencyKey::parse(&key).map_err(ChargeError::BadHeader)?;
    let ended = state.ledger.void(key).await;
    let label = match &ended {
        Ok(KeyEnd::Voided { .. }) => "voided",
        Ok(KeyEnd::Charged { .. }) => "charged",
        Err(_) => "error",
    };
    state.metrics.voids.with_label_values(&[label]).inc();
    Ok(HttpResponse::Ok().json(ended?))
}
