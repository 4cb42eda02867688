//! The edge's refusals of `POST /orders` — no client key, a client over
//! its limit — mapped to HTTP beside the order errors. Both come before
//! the body is read or a key reserved: this request created nothing and
//! charged nothing. Without an Idempotency-Key that is the whole truth
//! (`charge: none`); with one, an earlier request under the same key may
//! have charged its order, which this refusal did not look up, so the
//! answer says `unknown`: retry with the same key, never a new one.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use common::problem::{ChargeOutcome, Problem};

use super::KEY_UNREAD;

/// A refusal, and whether the request carried an Idempotency-Key.
#[derive(Debug, thiserror::Error)]
#[error("{refusal}{}", if *.keyed { KEY_UNREAD } else { "" })]
pub struct Refused {
    pub refusal: LimitError,
    pub keyed: bool,
}

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

impl Refused {
    fn problem(&self) -> Problem {
        let detail = self.to_string();
        let problem = match &self.refusal {
            LimitError::NoClientKey => Problem::new(
                StatusCode::UNAUTHORIZED,
                "client-key-required",
                "Unauthorized",
                detail,
            )
            .with_bearer_challenge(),
            LimitError::Limited { retry_after, .. } => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                detail,
            )
            .with_retry_after(whole_seconds(*retry_after)),
        };
        problem.with_charge(match self.keyed {
            true => ChargeOutcome::Unknown,
            false => ChargeOutcome::None,
        })
    }
}

impl ResponseError for Refused {
    fn status_code(&self) -> StatusCode {
        self.problem().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        self.problem().to_response()
    }
}
