//! `GET /ledger`: counts and duplicate charges, for audits after a load run;
//! `?detail=true` adds the charges themselves, a page at a time
//! (`&after=<next_cursor>&limit=<n>`), so that no single read holds the
//! ledger for long or answers with megabytes.

use std::sync::atomic::Ordering;

use actix_web::{HttpRequest, HttpResponse, web};
use common::problem::Problem;
use serde::Deserialize;

use crate::ledger::Page;
use crate::state::AppState;

/// Charges in one page unless `limit` says fewer.
pub const MAX_PAGE: usize = 1_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    #[serde(default)]
    detail: bool,
    #[serde(default)]
    after: usize,
    limit: Option<usize>,
}

pub async fn audit(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let query = match web::Query::<Query>::from_query(req.query_string()) {
        Ok(query) => query.into_inner(),
        Err(e) => return Problem::bad_request(format!("bad query: {e}")).to_response(),
    };
    let page = match query.limit {
        Some(0) => return Problem::bad_request("limit must be at least 1").to_response(),
        Some(n) if n > MAX_PAGE => {
            return Problem::bad_request(format!("limit must be at most {MAX_PAGE}")).to_response();
        }
        limit => query.detail.then_some(Page {
            after: query.after,
            limit: limit.unwrap_or(MAX_PAGE),
        }),
    };
    let mut audit = state.ledger.audit(page);
    audit.requests = state.requests.load(Ordering::Relaxed);
    HttpResponse::Ok().json(audit)
}
