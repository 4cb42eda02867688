//! `GET /ledger`: counts and duplicate charges, for audits after a load run;
//! `?detail=true` adds the charges themselves, a page at a time
//! (`&after=<next_cursor>&limit=<n>`), so that no single read holds the
//! ledger for long or answers with megabytes.

use std::sync::atomic::Ordering;

use actix_web::{HttpRequest, HttpResponse, web};
use common::openapi::{AdminOff, Unauthorized};
use common::problem::Problem;
use serde::Deserialize;

use crate::error::AdminError;
use crate::ledger::Page;
use crate::state::AppState;

/// Charges in one page unless `limit` says fewer.
pub const MAX_PAGE: usize = 1_000;
/// The largest cursor taken (2^53 - 1, as the OpenAPI description says).
const MAX_CURSOR: u64 = 9_007_199_254_740_991;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Query {
    /// Add a page of charges (`entries`).
    #[serde(default)]
    detail: bool,
    /// Skip the first charges: the `next_cursor` of the page before.
    #[serde(default)]
    #[param(maximum = 9_007_199_254_740_991_u64)]
    after: u64,
    /// Charges in the page, 1 to 1,000 (default 1,000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// Counts and duplicate charges, with a page of charges on `?detail=true`.
#[utoipa::path(
    get,
    path = "/ledger",
    tag = "audit",
    security(("admin_token" = [])),
    params(Query),
    responses(
        (status = 200, description = "The audit", body = crate::ledger::Audit),
        (status = 400, description = "A bad query", body = Problem, content_type = "application/problem+json"),
        (status = 401, response = Unauthorized),
        (status = 404, response = AdminOff),
    ),
)]
pub async fn audit(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AdminError> {
    let bad = |why: String| Err(AdminError::BadQuery(why));
    let query = match web::Query::<Query>::from_query(req.query_string()) {
        Ok(query) => query.into_inner(),
        Err(e) => return bad(format!("bad query: {e}")),
    };
    if query.after > MAX_CURSOR {
        return bad(format!("after must be at most {MAX_CURSOR}"));
    }
    let page = match query.limit {
        Some(0) => return bad("limit must be at least 1".into()),
        Some(n) if n > MAX_PAGE => return bad(format!("limit must be at most {MAX_PAGE}")),
        limit => query.detail.then_some(Page {
            after: usize::try_from(query.after).unwrap_or(usize::MAX),
            limit: limit.unwrap_or(MAX_PAGE),
        }),
    };
    let mut audit = state.ledger.audit(page);
    audit.requests = state.requests.load(Ordering::Relaxed);
    Ok(HttpResponse::Ok().json(audit))
}
