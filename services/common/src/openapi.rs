//! The OpenAPI schemas of the shared types, written from the same rules
//! their parsers enforce (the constants are the parsers'), so the
//! description cannot promise a value the services refuse. Each service
//! assembles its document (`GET /openapi.json`) from these and its own.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use serde_json::json;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Schema};
use utoipa::{Modify, PartialSchema, ToResponse, ToSchema};

use crate::domain::{Amount, Currency, IdempotencyKey, MerchantId, OrderId, merchant_id};

impl PartialSchema for MerchantId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(merchant_id::MAX_LEN))
            .pattern(Some("^[A-Za-z0-9_-]+$"))
            .examples([json!("merchant_123")])
            .into()
    }
}
impl ToSchema for MerchantId {}

impl PartialSchema for Amount {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Number)
            .description(Some(
                "Exact decimal, at most two decimal places (none for a currency without \
                 minor units, such as JPY)",
            ))
            .exclusive_minimum(Some(0))
            .maximum(Some(1_000_000))
            .multiple_of(Some(0.01))
            .examples([json!(99.99)])
            .into()
    }
}
impl ToSchema for Amount {}

impl PartialSchema for Currency {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("ISO 4217 alphabetic code"))
            .enum_values(Some(Currency::codes()))
            .examples([json!("USD")])
            .into()
    }
}
impl ToSchema for Currency {}

impl PartialSchema for OrderId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
            .into()
    }
}
impl ToSchema for OrderId {}

impl PartialSchema for IdempotencyKey {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(crate::domain::idempotency_key::MAX_LEN))
            .pattern(Some("^[\\x21-\\x7E]([\\x20-\\x7E]*[\\x21-\\x7E])?$"))
            .into()
    }
}
impl ToSchema for IdempotencyKey {}

/// The security schemes the services' `security(...)` attributes name
/// (`"admin_token"`, `"service_key"`: the macro wants literals).
pub const ADMIN_TOKEN: &str = "admin_token";
pub const SERVICE_KEY: &str = "service_key";

/// The `modifiers(&SecuritySchemes)` of both documents: the two bearer
/// schemes.
pub struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut OpenApi) {
        add_security_schemes(doc);
    }
}

fn add_security_schemes(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    let bearer = |what: &str| {
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(what.to_owned()))
                .build(),
        )
    };
    components.add_security_scheme(
        ADMIN_TOKEN,
        bearer("ADMIN_TOKEN (make run writes it to run/admin-token)"),
    );
    components.add_security_scheme(
        SERVICE_KEY,
        bearer("PAYMENT_API_KEY, presented by order-service"),
    );
}

/// `GET /openapi.json`: the document `build` makes, built and serialized
/// once per process (it cannot change while the process runs).
pub fn document(cache: &'static OnceLock<Vec<u8>>, build: fn() -> OpenApi) -> HttpResponse {
    let body = cache.get_or_init(|| serde_json::to_vec(&build()).unwrap_or_default());
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body.as_slice())
}

/// A problem+json answer (RFC 9457), described.
fn problem(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        crate::problem::CONTENT_TYPE,
        Content::new(Some(Ref::from_schema_name("Problem"))),
    )
}

fn header(description: &str, schema: Type) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(schema)))
        .description(Some(description))
        .build()
}

/// The answers both services give alike, as response components: a path
/// names them (`response = Unauthorized`), its document lists them
/// (`components(responses(...))`).
macro_rules! responses {
    ($($(#[$doc:meta])* $name:ident => $build:expr;)*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), $build.build().into())
            }
        }
    )*};
}

responses! {
    /// 401: the bearer credential is missing or wrong.
    Unauthorized => problem("Without the right bearer credential")
        .header("WWW-Authenticate", header("Bearer", Type::String));
    /// 404 on an admin route: no ADMIN_TOKEN is configured.
    AdminOff => problem("No ADMIN_TOKEN configured: the route does not exist");
    /// 408: the body did not arrive within BODY_TIMEOUT_MS.
    BodyTimeout => problem("The body did not arrive within BODY_TIMEOUT_MS; nothing was done");
    /// 413: the body is over 16 KiB.
    TooLarge => problem("Body over 16 KiB");
}
