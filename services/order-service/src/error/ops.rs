//! The operator's endpoints' failures, mapped to HTTP beside the order
//! errors.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use common::problem::Problem;

/// What keeps the operator's endpoints (`/ready`, `/admin/*`) from
/// answering.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The body could not be read or parsed (content type, size, syntax).
    #[error("{0}")]
    Body(Problem),
    #[error("the circuit breaker actor is restarting; retry shortly")]
    BreakerRestarting,
    #[error("the breaker's event stream has as many readers as it serves; retry later")]
    TooManyWatchers,
    #[error("order-service is shutting down; watch again once it is back")]
    ShuttingDown,
    #[error("{0}")]
    NotReady(&'static str),
    /// No PAYMENT_ADMIN_TOKEN: payment's faults are not ours to set.
    #[error("payment's fault controls need PAYMENT_ADMIN_TOKEN (payment-service's ADMIN_TOKEN)")]
    PaymentAdminOff,
    #[error("payment-service did not answer: {0}")]
    PaymentUnreachable(String),
}

impl OpsError {
    fn problem(&self) -> Problem {
        let (kind, title, retry_after) = match self {
            Self::Body(problem) => return problem.clone(),
            Self::PaymentAdminOff => return Problem::not_found(self.to_string()),
            Self::PaymentUnreachable(_) => {
                let title = "Payment service unreachable";
                let status = StatusCode::BAD_GATEWAY;
                return Problem::new(status, "payment-unreachable", title, self.to_string());
            }
            Self::NotReady(_) => ("not-ready", "Not ready", None),
            Self::BreakerRestarting => ("unavailable", "Service unavailable", Some(1)),
            Self::TooManyWatchers => ("too-many-watchers", "Too many watchers", Some(5)),
            Self::ShuttingDown => ("shutting-down", "Shutting down", Some(1)),
        };
        let problem = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            kind,
            title,
            self.to_string(),
        );
        match retry_after {
            Some(secs) => problem.with_retry_after(secs),
            None => problem,
        }
    }
}

impl ResponseError for OpsError {
    fn status_code(&self) -> StatusCode {
        self.problem().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        self.problem().to_response()
    }
}
