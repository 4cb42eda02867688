//! The policy around payment attempts: everything between "charge this
//! order" and one HTTP attempt. Today that is the timeout budget; the
//! contract's retry, circuit breaker and bulkhead slot in here.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use tracing::Instrument;

use super::client::{Attempt, PaymentClient, Receipt};
use crate::domain::Order;

/// How a payment call ended without a charge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// Payment-service refused the charge for good (decline, invalid).
    #[error("declined: {detail}")]
    Declined { detail: String },
    /// No charge confirmed; `reached` if an attempt may have been processed.
    #[error("{detail}")]
    Failed { reached: bool, detail: String },
    /// The budget ran out; an attempt may have been processed.
    #[error("payment budget ran out")]
    TimedOut,
}

impl PaymentError {
    /// Whether a charge may exist although none was confirmed.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            Self::Declined { .. } => false,
            Self::Failed { reached, .. } => *reached,
            Self::TimedOut => true,
        }
    }
}

pub struct PaymentCall {
    client: PaymentClient,
    budget: Duration,
}

impl PaymentCall {
    pub fn new(client: PaymentClient, budget: Duration) -> Self {
        Self { client, budget }
    }

    pub async fn charge(&self, order: &Order) -> Result<Receipt, PaymentError> {
        let span = tracing::info_span!(
            "callPayment",
            timeout_ms = self.budget.as_millis() as u64,
            retry.attempts = 1,
        );
        async {
            let deadline = Instant::now() + self.budget;
            let attempt_span = tracing::info_span!(
                "POST",
                otel.kind = "client",
                retry.attempt = 0,
                http.response.status_code = tracing::field::Empty,
            );
            let time_left = deadline.saturating_duration_since(Instant::now());
            let attempt = self
                .client
                .charge(order, time_left)
                .instrument(attempt_span)
                .await;
            outcome(attempt)
        }
        .instrument(span)
        .await
    }
}

fn outcome(attempt: Attempt) -> Result<Receipt, PaymentError> {
    let reached = attempt.may_have_reached_payment();
    match attempt {
        Attempt::Charged(receipt) => Ok(receipt),
        Attempt::Rejected { detail, .. } => Err(PaymentError::Declined { detail }),
        // Payment-service's own 504 says the budget it was sent cannot
        // cover the work: the budget ran out, just noticed downstream.
        Attempt::TimedOut
        | Attempt::Failed {
            status: StatusCode::GATEWAY_TIMEOUT,
            ..
        } => Err(PaymentError::TimedOut),
        Attempt::Failed { status, .. } => Err(PaymentError::Failed {
            reached,
            detail: format!("payment-service answered {status}"),
        }),
        Attempt::ConnectFailed(e) => Err(PaymentError::Failed {
            reached,
            detail: format!("payment-service unreachable: {e}"),
        }),
        Attempt::Broken(e) => Err(PaymentError::Failed {
            reached,
            detail: format!("connection to payment-service broke: {e}"),
        }),
    }
}
