//! The OpenAPI schemas of the shared types, written from the same rules
//! their parsers enforce (the constants are the parsers'), so the
//! description cannot promise a value the services refuse. Each service
//! assembles its document (`GET /openapi.json`) from these and its own.

use serde_json::json;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

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

/// Names of the security schemes the services' documents use.
pub const ADMIN_TOKEN: &str = "admin_token";
pub const SERVICE_KEY: &str = "service_key";

/// Adds the two bearer schemes to a document's components.
pub fn add_security_schemes(doc: &mut OpenApi) {
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
