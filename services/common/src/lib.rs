//! What both services share: the domain types that money and orders are made
//! of, and the few HTTP pieces that must behave identically on both sides of
//! the payment call.
//!
//! Both services parse the same fields (`amount`, `currency`, `merchant_id`,
//! `order_id`) from JSON, so they share one parser: a value that order-service
//! accepts is exactly a value payment-service accepts.
//!
//! # Layout
//! - [`domain`]: newtypes that can only hold valid values (`Amount`,
//!   `Currency`, `MerchantId`, `OrderId`, `IdempotencyKey`) and the
//!   [`domain::FieldError`] a failed parse reports.
//! - [`problem`]: RFC 9457 problem details, the only error body either
//!   service sends.
//! - [`body`]: reads a JSON request body with a size limit and a content-type
//!   check, so oversized or non-JSON input is refused before it is parsed.
//! - [`auth`]: the bearer-credential gates (admin token, service key).
//! - [`headers`]: the request headers both services read alike
//!   (`Idempotency-Key`, `X-Request-Timeout-Ms`).
//! - [`server`]: the HTTP-server settings both services take.
//! - [`tls`]: their listeners' TLS and order-service's TLS client.
//! - [`openapi`]: the OpenAPI schemas of the shared types and the security
//!   schemes.
#![forbid(unsafe_code)]

pub mod auth;
pub mod body;
pub mod domain;
pub mod headers;
pub mod openapi;
pub mod problem;
pub mod server;
pub mod tls;
