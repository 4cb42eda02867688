//! order-service's OpenAPI 3.1 description, served at `GET /openapi.json`:
//! assembled from the handlers' `#[utoipa::path]` and the types they read
//! and answer, so it changes when they do (CI fuzzes the service against it).

use std::sync::OnceLock;

use actix_web::HttpResponse;
use common::domain::IdempotencyKey;
use common::openapi::{AdminOff, BodyTimeout, SecuritySchemes, TooLarge, Unauthorized};
use common::problem::Problem;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{admin, dashboard, health, metrics, orders};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "order-service",
        description = "Takes orders and charges them through payment-service behind timeouts, \
                       retries, a circuit breaker, a bulkhead and idempotency keys.",
        license(name = "MIT", identifier = "MIT"),
    ),
    paths(
        orders::create_order,
        orders::get_order,
        health::health,
        health::ready,
        metrics::metrics,
        admin::get_breaker,
        admin::put_breaker,
        admin::breaker_events,
        dashboard::page,
        dashboard::script,
        dashboard::style,
        dashboard::snapshot,
        dashboard::get_faults,
        dashboard::put_faults,
        openapi_json,
    ),
    components(
        schemas(IdempotencyKey, Problem),
        responses(AdminOff, BodyTimeout, TooLarge, Unauthorized),
    ),
    modifiers(&SecuritySchemes, &ClientKeyScheme),
)]
pub struct ApiDoc;

/// The clients' keys (`security(("client_key" = []))` on `POST /orders`).
struct ClientKeyScheme;

impl Modify for ClientKeyScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "A client's key from CLIENT_KEYS; needed only while CLIENT_KEYS is set".to_owned(),
            ))
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("client_key", SecurityScheme::Http(scheme));
    }
}

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
