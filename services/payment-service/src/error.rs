//! Every way a charge request can fail, and the one place each becomes an
//! HTTP status and a problem+json body.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use common::domain::{FieldError, IdempotencyKey};
use common::problem::Problem;

use crate::ledger::LedgerError;

#[derive(Debug, thiserror::Error)]
pub enum ChargeError {
    /// The body could not be read or parsed (content type, size, syntax).
    #[error("{0}")]
    Body(Problem),
    #[error("the Idempotency-Key header is required")]
    MissingKey,
    #[error("bad header {0}")]
    BadHeader(FieldError),
    #[error("invalid charge request")]
    Validation(Vec<FieldError>),
    #[error("rate limited (injected)")]
    RateLimited,
    #[error("internal error (injected)")]
    Injected,
    #[error("charge recorded, then failed (injected)")]
    FailedAfterCharge,
    #[error("cannot finish within the caller's X-Request-Timeout-Ms")]
    DeadlineExceeded,
    #[error("declined: {0}")]
    Declined(String),
    #[error("Idempotency-Key already used for a different charge")]
    KeyReused,
    #[error("Idempotency-Key voided")]
    Voided,
    #[error("ledger unavailable")]
    Ledger(#[source] std::io::Error),
    #[error("the ledger's write queue is full")]
    LedgerBusy,
}

impl From<LedgerError> for ChargeError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::KeyReused { .. } => Self::KeyReused,
            LedgerError::Voided => Self::Voided,
            LedgerError::Io(e) => Self::Ledger(e),
            LedgerError::Busy => Self::LedgerBusy,
        }
    }
}

impl ChargeError {
    fn problem(&self) -> Problem {
        match self {
            Self::Body(problem) => problem.clone(),
            Self::MissingKey => Problem::bad_request(self.to_string()),
            Self::BadHeader(e) => Problem::bad_request(e.to_string()),
            Self::Validation(errors) => Problem::validation(errors.clone()),
            Self::RateLimited => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                self.to_string(),
            )
            .with_retry_after(1),
            Self::Injected | Self::FailedAfterCharge => Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "injected-fault",
                "Internal server error",
                self.to_string(),
            ),
            Self::DeadlineExceeded => Problem::new(
                StatusCode::GATEWAY_TIMEOUT,
                "deadline-exceeded",
                "Deadline exceeded",
                "the caller's X-Request-Timeout-Ms leaves too little time; nothing was charged",
            ),
            Self::Declined(reason) => Problem::new(
                StatusCode::PAYMENT_REQUIRED,
                "payment-declined",
                "Payment declined",
                reason.clone(),
            ),
            Self::KeyReused => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                "this Idempotency-Key was used for a charge with a different body",
            ),
            // order-service reads this type: a definitive "never charged".
            Self::Voided => Problem::new(
                StatusCode::CONFLICT,
                "charge-voided",
                "Charge voided",
                "this Idempotency-Key was voided: nothing was charged under it, and nothing ever will be",
            ),
            Self::Ledger(_) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ledger-unavailable",
                "Ledger unavailable",
                "the charge could not be recorded durably; nothing was charged",
            )
            .with_retry_after(1),
            Self::LedgerBusy => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ledger-busy",
                "Ledger busy",
                "the ledger's disk is not keeping up; nothing was charged, retry shortly",
            )
            .with_retry_after(1),
        }
    }
}

impl ResponseError for ChargeError {
    fn status_code(&self) -> StatusCode {
        self.problem().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Ledger(e) = self {
            tracing::error!(error = %e, "ledger write failed");
        }
        self.problem().to_response()
    }
}

/// What keeps the operator's and the auditor's endpoints (`/admin/faults`,
/// `/ledger`, `GET /charges/{key}`) from answering.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The body could not be read or parsed (content type, size, syntax).
    #[error("{0}")]
    Body(Problem),
    #[error("{0}")]
    BadQuery(String),
    #[error("{0}")]
    BadKey(FieldError),
    #[error("invalid faults")]
    Faults(Vec<FieldError>),
    #[error("no charge under key {key}{}", if *.voided { ": it was voided" } else { "" })]
    NoCharge { key: IdempotencyKey, voided: bool },
}

impl AdminError {
    fn problem(&self) -> Problem {
        match self {
            Self::Body(problem) => problem.clone(),
            Self::BadQuery(_) | Self::BadKey(_) => Problem::bad_request(self.to_string()),
            Self::Faults(errors) => Problem::validation(errors.clone()),
            Self::NoCharge { .. } => Problem::not_found(self.to_string()),
        }
    }
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        self.problem().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        self.problem().to_response()
    }
}
