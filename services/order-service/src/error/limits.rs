//! The edge's refusals of `POST /orders` — no client key, a client over
//! its limit — mapped to HTTP beside the order errors. Both come before
//! the body is read or a key reserved: nothing was created, nothing
//! charged.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use common::problem::{ChargeOutcome, Problem};

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("POST /orders needs Authorization: Bearer <client key> (CLIENT_KEYS)")]
    NoClientKey,
    /// `who` is the client's name, or "this address".
    #[error("{who} is over its limit of {limit}; retry after {} s", whole_seconds(*.retry_after))]
    Limited {
        who: String,
        limit: String,
        retry_after: Duration,
    },
}

/// `Retry-After` in whole seconds, rounded up: a client that waits that
/// long is let in.
pub fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl LimitError {
    fn problem(&self) -> Problem {
        let problem = match self {
            Self::NoClientKey => Problem::new(
                StatusCode::UNAUTHORIZED,
                "client-key-required",
                "Unauthorized",
                self.to_string(),
            )
            .with_bearer_challenge(),
            Self::Limited { retry_after, .. } => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                self.to_string(),
            )
            .with_retry_after(whole_seconds(*retry_after)),
        };
        problem.with_charge(ChargeOutcome::None)
    }
}

impl ResponseError for LimitError {
    fn status_code(&self) -> StatusCode {
        self.problem().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        self.problem().to_response()
    }
}
