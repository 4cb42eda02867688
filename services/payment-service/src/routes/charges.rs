//! `GET /charges/{idempotency_key}`: what was charged under a key, so a
//! caller that lost a response can find out without charging again.

use actix_web::{HttpResponse, web};
use common::domain::IdempotencyKey;
use common::problem::Problem;

use crate::state::AppState;

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
