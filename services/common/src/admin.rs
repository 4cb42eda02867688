//! The gate in front of `/admin/*`. Without `ADMIN_TOKEN` the admin surface
//! does not exist (404, so a scanner learns nothing); with it, every request
//! needs `Authorization: Bearer <token>` (401 otherwise). The token is
//! compared in constant time so response timing does not leak its prefix.

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, HeaderMap};
use actix_web::middleware::Next;
use actix_web::web;
use subtle::ConstantTimeEq;

use crate::problem::Problem;

#[derive(Clone, Default)]
pub struct AdminToken(Option<Arc<str>>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = if self.0.is_some() { "<set>" } else { "<unset>" };
        f.debug_tuple("AdminToken").field(&shown).finish()
    }
}

impl AdminToken {
    /// An empty token counts as unset: it would otherwise be trivially guessed.
    pub fn new(token: Option<String>) -> Self {
        Self(token.filter(|t| !t.is_empty()).map(Arc::from))
    }

    pub fn check(&self, headers: &HeaderMap) -> Result<(), Problem> {
        let Some(expected) = &self.0 else {
            return Err(Problem::not_found("no such resource"));
        };
        let presented = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .unwrap_or("");
        if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
            Ok(())
        } else {
            Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                "admin endpoints need Authorization: Bearer <ADMIN_TOKEN>",
            )
            .with_bearer_challenge())
        }
    }
}

/// The token of `Bearer <token>`: the scheme is case-insensitive and may be
/// followed by several spaces (RFC 9110 §11.1, §11.4).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

/// Middleware for the `/admin` scope; the token comes from app data.
pub async fn require_admin<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let verdict = match req.app_data::<web::Data<AdminToken>>() {
        Some(token) => token.check(req.headers()),
        None => AdminToken::default().check(req.headers()),
    };
    match verdict {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(problem) => Ok(req
            .into_response(problem.to_response())
            .map_into_right_body()),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    fn check(value: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        AdminToken::new(Some("s3cret".into()))
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
