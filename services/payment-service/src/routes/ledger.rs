//! `GET /ledger`: counts and duplicate charges, for audits after a load run;
//! `?detail=true` adds every charge.

use std::sync::atomic::Ordering;

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::startup::AppState;

#[derive(Deserialize)]
pub struct Query {
    #[serde(default)]
    detail: bool,
}

pub async fn audit(query: web::Query<Query>, state: web::Data<AppState>) -> HttpResponse {
    let mut audit = state.ledger.audit(query.detail);
    audit.requests = state.requests.load(Ordering::Relaxed);
    HttpResponse::Ok().json(audit)
}
