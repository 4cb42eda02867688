//! payment-service's OpenAPI 3.1 description, served at `GET /openapi.json`:
//! assembled from the handlers' `#[utoipa::path]` and the types they read
//! and answer, so it changes when they do (CI fuzzes the service against it).

use std::sync::OnceLock;

use actix_web::HttpResponse;
use common::domain::IdempotencyKey;
use common::openapi::{AdminOff, BodyTimeout, SecuritySchemes, TooLarge, Unauthorized};
use common::problem::Problem;
use utoipa::OpenApi;

use crate::routes::{admin, charge, charges, health, ledger};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "payment-service",
        description = "Idempotent charge ledger with runtime fault injection: the downstream of order-service.",
        license(name = "MIT", identifier = "MIT"),
    ),
    paths(
        charge::charge,
        charges::get_charge,
        charges::void,
        ledger::audit,
        admin::get_faults,
        admin::put_faults,
        health::health,
        crate::routes::metrics::metrics,
        openapi_json,
    ),
    components(
        schemas(IdempotencyKey, Problem),
        responses(AdminOff, BodyTimeout, TooLarge, Unauthorized),
    ),
    modifiers(&SecuritySchemes),
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "probes",
    responses((status = 200, description = "The OpenAPI 3.1 description", body = Object)),
)]
pub async fn openapi_json() -> HttpResponse {
    static DOCUMENT: OnceLock<Vec<u8>> = OnceLock::new();
    common::openapi::document(&DOCUMENT, ApiDoc::openapi)
}
