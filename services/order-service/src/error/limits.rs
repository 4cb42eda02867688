//! The edge's refusals of `POST /orders` — no client key, a client over
//! its limit — mapped to HTTP beside the order errors. Both come before
//! the body is parsed or a key reserved: this request created nothing and
//! charged nothing. They reach the client as `OrderError::Edge`, so that a
//! keyed one says `unknown` as every refusal before the key is read does
//! (`OrderError::before_key`).

use std::time::Duration;

use actix_web::http::StatusCode;
use common::problem::Problem;

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
    /// Its status and kind; what it lets a client conclude about money is
    /// `OrderError`'s to say (`KeyUnread` when the request has a key).
    pub(super) fn problem(&self) -> Problem {
        let detail = self.to_string();
        match self {
            Self::NoClientKey => Problem::new(
                StatusCode::UNAUTHORIZED,
                "client-key-required",
                "Unauthorized",
                detail,
            )
            .with_bearer_challenge(),
            Self::Limited { retry_after, .. } => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                detail,
            )
            .with_retry_after(whole_seconds(*retry_after)),
        }
    }
}
