//! `GET /admin/dashboard`: the breaker, the bulkhead and the money as they
//! move, in a browser. The page is code, the same for everyone, with no
//! state in it: a browser's navigation cannot send a bearer token, and the
//! token is kept out of URLs and cookies, so the page and its two files
//! are served while ADMIN_TOKEN is set (404 otherwise, as every admin
//! route), and everything the page shows comes from routes that need the
//! token. The page asks for it once and keeps it in the tab's session
//! storage. Its Content-Security-Policy allows no inline script or style
//! and no connection but to this origin.

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use common::auth::AdminToken;
use common::body::json_body;
use common::openapi::{AdminOff, BodyTimeout, TooLarge, Unauthorized};
use common::problem::Problem;
use serde::Serialize;

use crate::error::OpsError;
use crate::payment::admin::{PaymentAdmin, Reply};

const PAGE: &str = include_str!("../../dashboard/index.html");
const SCRIPT: &str = include_str!("../../dashboard/dashboard.js");
const STYLE: &str = include_str!("../../dashboard/dashboard.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self'; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

fn asset(token: &AdminToken, body: &'static str, content_type: &str) -> HttpResponse {
    if let Err(off) = token.0.surface() {
        return off.to_response();
    }
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

#[utoipa::path(
    get,
    path = "/admin/dashboard",
    tag = "admin",
    responses(
        (status = 200, description = "The dashboard page (no data in it: it asks for the admin token)", body = String, content_type = "text/html"),
        (status = 404, response = AdminOff),
    ),
)]
pub async fn page(token: web::Data<AdminToken>) -> HttpResponse {
    asset(&token, PAGE, "text/html; charset=utf-8")
}

#[utoipa::path(
    get,
    path = "/admin/dashboard/dashboard.js",
    tag = "admin",
    responses(
        (status = 200, description = "The page's script", body = String, content_type = "text/javascript"),
        (status = 404, response = AdminOff),
    ),
)]
pub async fn script(token: web::Data<AdminToken>) -> HttpResponse {
    asset(&token, SCRIPT, "text/javascript; charset=utf-8")
}

#[utoipa::path(
    get,
    path = "/admin/dashboard/dashboard.css",
    tag = "admin",
    responses(
        (status = 200, description = "The page's style sheet", body = String, content_type = "text/css"),
        (status = 404, response = AdminOff),
    ),
)]
pub async fn style(token: web::Data<AdminToken>) -> HttpResponse {
    asset(&token, STYLE, "text/css; charset=utf-8")
}

/// One worker's view of what the page shows besides `/metrics`.
pub struct Dashboard {
    pub payment: PaymentAdmin,
    /// The process serving the page (`host (pid N)`): with replicas, the
    /// one behind the balancer this time.
    pub replica: String,
    /// `memory`, or `postgresql` (pending orders and keys shared by all).
    pub store: &'static str,
}

/// What the page reads besides `/metrics` and the breaker's events.
#[derive(Serialize)]
struct Snapshot {
    replica: String,
    /// `memory`, or `postgresql` (pending orders and keys shared by all).
    store: &'static str,
    payment: PaymentView,
}

#[derive(Serialize)]
struct PaymentView {
    /// Whether `/admin/payment/faults` reaches payment's fault controls.
    controls: bool,
    /// payment's faults now (with PAYMENT_ADMIN_TOKEN).
    faults: Option<serde_json::Value>,
    /// Charges in payment's ledger; faults it injected so far.
    ledger_charges: Option<u64>,
    faults_injected: Option<u64>,
    /// Why payment could not be read, if it could not.
    error: Option<String>,
}

/// `GET /admin/dashboard/snapshot`: the replica serving the page, its
/// store, and payment-service as the page shows it.
#[utoipa::path(
    get,
    path = "/admin/dashboard/snapshot",
    tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The snapshot", body = Object),
        (status = 401, response = Unauthorized),
        (status = 404, response = AdminOff),
    ),
)]
pub async fn snapshot(dashboard: web::Data<Dashboard>) -> HttpResponse {
    let payment = &dashboard.payment;
    let (counts, faults) = futures_util::join!(payment.counts(), payment.faults());
    let mut view = PaymentView {
        controls: payment.controls(),
        faults: None,
        ledger_charges: None,
        faults_injected: None,
        error: None,
    };
    match counts {
        Ok((charges, injected)) => {
            (view.ledger_charges, view.faults_injected) = (charges, Some(injected))
        }
        Err(e) => view.error = Some(e),
    }
    if let Some(Ok(reply)) = faults
        && reply.status == 200
    {
        view.faults = serde_json::from_slice(&reply.body).ok();
    }
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Snapshot {
            replica: dashboard.replica.clone(),
            store: dashboard.store,
            payment: view,
        })
}

/// This process, as the page names it.
pub fn replica() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{} (pid {})", host.trim(), std::process::id())
}

/// `GET /admin/payment/faults`: payment's faults, as payment answers.
#[utoipa::path(
    get,
    path = "/admin/payment/faults",
    tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "payment-service's faults", body = Object),
        (status = 401, response = Unauthorized),
        (status = 404, description = "The admin API is off, or order-service has no PAYMENT_ADMIN_TOKEN", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "payment-service did not answer", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn get_faults(dashboard: web::Data<Dashboard>) -> Result<HttpResponse, OpsError> {
    passed_on(dashboard.payment.faults().await)
}

/// `PUT /admin/payment/faults`: sets payment's faults (payment reads and
/// checks the body, and its answer comes back as it is).
#[utoipa::path(
    put,
    path = "/admin/payment/faults",
    tag = "admin",
    security(("admin_token" = [])),
    request_body(content = PaymentFaults, content_type = "application/json"),
    responses(
        (status = 200, description = "payment-service's faults now", body = Object),
        (status = 400, description = "Malformed JSON or wrong content type (here or at payment-service)", body = Problem, content_type = "application/problem+json"),
        (status = 408, response = BodyTimeout),
        (status = 413, response = TooLarge),
        (status = 422, description = "payment-service refused a value", body = Problem, content_type = "application/problem+json"),
        (status = 401, response = Unauthorized),
        (status = 404, description = "The admin API is off, or order-service has no PAYMENT_ADMIN_TOKEN", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "payment-service did not answer", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn put_faults(
    req: HttpRequest,
    payload: web::Payload,
    dashboard: web::Data<Dashboard>,
) -> Result<HttpResponse, OpsError> {
    // Read as every body is (its type, its size, its syntax), checked by
    // payment.
    let body = json_body::<serde_json::Value>(&req, payload)
        .await
        .map_err(OpsError::Body)?;
    let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    let answer = passed_on(dashboard.payment.set_faults(body).await);
    if let Ok(response) = &answer
        && response.status().is_success()
    {
        tracing::info!("payment faults set from the dashboard");
    }
    answer
}

/// payment-service's faults, as its `PUT /admin/faults` takes them (it
/// reads and checks them: this describes the body, nothing parses it
/// here). A field left out is 0.
#[derive(Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
#[allow(dead_code)]
pub struct PaymentFaults {
    /// Latency added to every charge, in milliseconds.
    #[schema(maximum = 300_000)]
    delay_ms: u64,
    /// Percentage of charges answered 500 before anything is charged.
    #[schema(maximum = 100)]
    error_pct: u8,
    /// Percentage of charges answered 429.
    #[schema(maximum = 100)]
    rate_limit_pct: u8,
    /// Percentage of charges made, then answered 500.
    #[schema(maximum = 100)]
    fail_after_charge_pct: u8,
}

fn passed_on(reply: Option<Result<Reply, String>>) -> Result<HttpResponse, OpsError> {
    let reply = reply
        .ok_or(OpsError::PaymentAdminOff)?
        .map_err(OpsError::PaymentUnreachable)?;
    let status = actix_web::http::StatusCode::from_u16(reply.status)
        .map_err(|e| OpsError::PaymentUnreachable(e.to_string()))?;
    Ok(HttpResponse::build(status)
        .content_type(reply.content_type)
        .body(reply.body))
}
