//! Every way an order request can fail, and the one place each becomes an
//! HTTP status and a problem+json body.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use actors::idempotency::StoredResponse;
use common::domain::{FieldError, OrderId};
use common::problem::Problem;

use crate::domain::OrderStatus;
use crate::payment::PaymentError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// The body could not be read or parsed (content type, size, syntax).
    #[error("{0}")]
    Body(Problem),
    #[error("bad header {0}")]
    BadHeader(FieldError),
    #[error("invalid order")]
    Validation(Vec<FieldError>),
    #[error("order {0} not found")]
    NotFound(String),
    /// The call ended without a charge; `status` is the order's now.
    #[error("payment for order {order_id} failed")]
    Payment {
        order_id: OrderId,
        status: OrderStatus,
        #[source]
        cause: PaymentError,
    },
    #[error("order store failed")]
    Store(#[source] StoreError, Option<OrderId>),
    #[error("a request with this Idempotency-Key is in flight")]
    KeyInFlight,
    #[error("Idempotency-Key reused with a different body")]
    KeyReused,
    #[error("the idempotency store is full")]
    IdempotencyFull,
    #[error("{0} unavailable")]
    Unavailable(&'static str),
}

impl OrderError {
    /// The answer as stored for replay under an idempotency key.
    pub fn stored_response(&self) -> StoredResponse {
        let problem = self.problem();
        StoredResponse {
            status: problem.status,
            headers: problem
                .headers()
                .into_iter()
                .map(|(name, value)| (name.to_string(), value))
                .collect(),
            body: problem.body(),
        }
    }

    fn problem(&self) -> Problem {
        match self {
            Self::Body(problem) => problem.clone(),
            Self::BadHeader(e) => Problem::bad_request(e.to_string()),
            Self::Validation(errors) => Problem::validation(errors.clone()),
            Self::NotFound(id) => Problem::not_found(format!("no order {id}")),
            Self::Payment {
                order_id,
                status,
                cause,
            } => payment_problem(cause, *status).with_order_id(order_id),
            Self::Store(StoreError::Full, id) => {
                let problem = Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "order-store-full",
                    "Order store full",
                    "too many orders are pending; new orders are refused until some settle",
                )
                .with_retry_after(5);
                match id {
                    Some(id) => problem.with_order_id(id),
                    None => problem,
                }
            }
            // What the store said is for the logs (`error_response`): a
            // driver's message tells a client nothing it can act on.
            Self::Store(_, id) => {
                let problem = Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store-unavailable",
                    "Order store unavailable",
                    "the order store cannot be reached or did not answer in time; retry shortly",
                )
                .with_retry_after(1);
                match id {
                    Some(id) => problem.with_order_id(id),
                    None => problem,
                }
            }
            Self::KeyInFlight => Problem::new(
                StatusCode::CONFLICT,
                "idempotency-key-in-flight",
                "Request in flight",
                "a request with this Idempotency-Key is being processed; retry shortly",
            )
            .with_retry_after(1),
            Self::KeyReused => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                "this Idempotency-Key was used with a different request body",
            ),
            Self::IdempotencyFull => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "idempotency-store-full",
                "Idempotency store full",
                "too many Idempotency-Keys are remembered; new keys are refused until old ones expire",
            )
            .with_retry_after(60),
            Self::Unavailable(what) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
                format!("the {what} is unavailable; retry shortly"),
            )
            .with_retry_after(1),
        }
    }
}

/// The problem for a call that ended without a charge. A call refused
/// before any attempt (breaker, bulkhead) charged nothing itself, but the
/// order it was for may still be pending from an earlier attempt.
fn payment_problem(e: &PaymentError, status: OrderStatus) -> Problem {
    let refused = if status == OrderStatus::Pending {
        "no attempt was made now, but an earlier one may have charged: the order stays pending"
    } else {
        "nothing was charged"
    };
    match e {
        PaymentError::Declined { detail } => Problem::new(
            StatusCode::PAYMENT_REQUIRED,
            "payment-declined",
            "Payment declined",
            detail.clone(),
        ),
        PaymentError::Failed { reached, detail } => {
            let outcome = if *reached {
                "the outcome is unknown, the order stays pending"
            } else {
                "nothing was charged"
            };
            Problem::new(
                StatusCode::BAD_GATEWAY,
                "payment-failed",
                "Payment failed",
                format!("{detail}; {outcome}"),
            )
        }
        PaymentError::CircuitOpen { retry_after } => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "circuit-open",
            "Circuit breaker open",
            format!("payment-service is failing; calls are suspended; {refused}"),
        )
        .with_retry_after(retry_after.as_secs_f64().ceil().max(1.0) as u64),
        PaymentError::BulkheadFull => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "bulkhead-full",
            "Bulkhead limit reached",
            format!("too many payment calls in flight; {refused}"),
        )
        .with_retry_after(1),
        PaymentError::TimedOut => Problem::new(
            StatusCode::GATEWAY_TIMEOUT,
            "payment-timeout",
            "Payment budget exceeded",
            "payment-service did not answer within the budget; the order stays pending",
        ),
    }
}

impl ResponseError for OrderError {
    fn status_code(&self) -> StatusCode {
        self.problem().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let problem = self.problem();
        if problem.status_code().is_server_error() {
            let cause = std::error::Error::source(self).map(ToString::to_string);
            tracing::warn!(error = %problem, cause, "order failed");
        }
        problem.to_response()
    }
}
