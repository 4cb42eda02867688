//! Every way an order request can fail, and the one place each becomes an
//! HTTP status and a problem+json body.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use common::domain::{FieldError, OrderId};
use common::problem::Problem;

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
    #[error("payment for order {0} failed")]
    Payment(OrderId, #[source] PaymentError),
    #[error("order store failed")]
    Store(#[source] StoreError, Option<OrderId>),
}

impl OrderError {
    fn problem(&self) -> Problem {
        match self {
            Self::Body(problem) => problem.clone(),
            Self::BadHeader(e) => Problem::bad_request(e.to_string()),
            Self::Validation(errors) => Problem::validation(errors.clone()),
            Self::NotFound(id) => Problem::not_found(format!("no order {id}")),
            Self::Payment(id, e) => payment_problem(e).with_order_id(id),
            Self::Store(e, id) => {
                let problem = Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store-unavailable",
                    "Order store unavailable",
                    e.to_string(),
                )
                .with_retry_after(1);
                match id {
                    Some(id) => problem.with_order_id(id),
                    None => problem,
                }
            }
        }
    }
}

fn payment_problem(e: &PaymentError) -> Problem {
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
            tracing::warn!(error = %problem, "order failed");
        }
        problem.to_response()
    }
}
