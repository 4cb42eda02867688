//! The bearer-credential gates. Two secrets, two gates:
//! - the admin token (`ADMIN_TOKEN`) in front of `/admin/*` and of
//!   payment's ledger reads: without it that surface does not exist (404, so
//!   a scanner learns nothing);
//! - the service key (`PAYMENT_API_KEY`) that order-service presents to
//!   payment's `POST /charge`, so nobody else can create charges.
//!
//! Either way a request without the right `Authorization: Bearer <secret>`
//! gets 401. Secrets are compared in constant time so response timing does
//! not leak their prefix, and never appear in `Debug` output.

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, HeaderMap};
use actix_web::middleware::Next;
use actix_web::web;
use subtle::ConstantTimeEq;

use crate::problem::Problem;

/// A secret a caller must present as `Authorization: Bearer <secret>`.
#[derive(Clone)]
pub struct Secret {
    expected: Option<Arc<str>>,
    /// The setting that holds it, named in the 401's detail.
    setting: &'static str,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = if self.expected.is_some() {
            "<set>"
        } else {
            "<unset>"
        };
        f.debug_tuple(self.setting).field(&shown).finish()
    }
}

impl Secret {
    /// An empty secret counts as unset: it would otherwise be trivially guessed.
    fn new(secret: Option<String>, setting: &'static str) -> Self {
        Self {
            expected: secret.filter(|t| !t.is_empty()).map(Arc::from),
            setting,
        }
    }

    /// The secret, or the 404 of a gated surface that is off (no secret
    /// configured): what every gated route answers then.
    pub fn surface(&self) -> Result<&str, Problem> {
        self.expected
            .as_deref()
            .ok_or_else(|| Problem::not_found("no such resource"))
    }

    /// Ok when `headers` carry the secret; 401 when they do not; 404 when no
    /// secret is configured (the gated surface is off).
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Problem> {
        let expected = self.surface()?;
        let presented = presented_token(headers).unwrap_or("");
        if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
            Ok(())
        } else {
            Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                format!(
                    "this endpoint needs Authorization: Bearer <{}>",
                    self.setting
                ),
            )
            .with_bearer_challenge())
        }
    }
}

/// The operators' token (`ADMIN_TOKEN`).
#[derive(Clone, Debug)]
pub struct AdminToken(pub Secret);

impl AdminToken {
    pub fn new(token: Option<String>) -> Self {
        Self(Secret::new(token, "ADMIN_TOKEN"))
    }
}

/// The credential of payment-service's one caller (`PAYMENT_API_KEY`).
#[derive(Clone, Debug)]
pub struct ServiceKey(pub Secret);

impl ServiceKey {
    pub fn new(key: Option<String>) -> Self {
        Self(Secret::new(key, "PAYMENT_API_KEY"))
    }
}

/// `PAYMENT_API_KEY`, which both services need: payment-service takes
/// charges only from callers that present it. Unset or empty, neither
/// starts.
pub fn required_service_key(key: Option<&str>) -> std::io::Result<&str> {
    key.filter(|k| !k.is_empty()).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "PAYMENT_API_KEY is not set: payment-service takes charges only from callers \
             that present it (make run generates one into run/payment-api-key)",
        )
    })
}

/// The token of the request's `Authorization: Bearer <token>`, if any.
pub fn presented_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
}

/// The token of `Bearer <token>`: the scheme is case-insensitive and may be
/// followed by several spaces (RFC 9110 §11.1, §11.4).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

async fn gate<B: MessageBody>(
    secret: Option<&Secret>,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    // No secret in the app's data: the gated surface is off, as unset.
    let verdict = match secret {
        Some(secret) => secret.check(req.headers()),
        None => Err(Problem::not_found("no such resource")),
    };
    match verdict {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(problem) => Ok(req
            .into_response(problem.to_response())
            .map_into_right_body()),
    }
}

/// Middleware for what only operators may use; the token comes from app data.
pub async fn require_admin<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let secret = req.app_data::<web::Data<AdminToken>>().map(|t| t.0.clone());
    gate(secret.as_ref(), req, next).await
}

/// Middleware for payment's `POST /charge`; the key comes from app data.
pub async fn require_service_key<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let secret = req.app_data::<web::Data<ServiceKey>>().map(|k| k.0.clone());
    gate(secret.as_ref(), req, next).await
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    fn check(value: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        AdminToken::new(Some("s3cret".into()))
            .0
            .check(&headers)
            .is_ok()
    }

    #[test]
    fn the_bearer_scheme_is_matched_case_insensitively() {
        for good in [
            "Bearer s3cret",
            "bearer s3cret",
            "BEARER s3cret",
            "Bearer   s3cret",
        ] {
            assert!(check(good), "{good}");
        }
        for bad in [
            "Bearer s3crex",
            "Basic s3cret",
            "Bearers3cret",
            "s3cret",
            "Bearer  s3cret ",
        ] {
            assert!(!check(bad), "{bad}");
        }
    }
}
