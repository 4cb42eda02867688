//! Every way an order request can fail, and the one place each becomes an
//! HTTP status and a problem+json body.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use actors::idempotency::StoredResponse;
use common::domain::{FieldError, OrderId};
use common::problem::{ChargeOutcome, Problem};

use crate::domain::{Order, OrderStatus};
use crate::payment::{Failure, PaymentError};
use crate::store::{Cause, StoreError};

mod limits;
mod ops;

pub use limits::{LimitError, whole_seconds};
pub use ops::OpsError;

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
    /// The call ended without a charge; `status` is the order's now, as
    /// it stands for good (`failed`) or until payment-service tells.
    #[error("payment for order {order_id} failed")]
    Payment {
        order_id: OrderId,
        status: OrderStatus,
        #[source]
        cause: PaymentError,
    },
    /// Reading an order failed.
    #[error("order store failed")]
    Store(#[source] StoreError),
    /// Nothing was charged, and nothing will be: the store refused before
    /// anything was written, or did not answer and the order's payment key
    /// was voided.
    #[error("order refused")]
    Refused {
        #[source]
        cause: StoreError,
        order_id: Option<OrderId>,
    },
    /// The order may be charged, and its outcome could not be recorded:
    /// it stays `pending` until the reconciler learns it.
    #[error("outcome of order {order_id} unknown")]
    OutcomeUnknown {
        order_id: OrderId,
        #[source]
        cause: Cause,
    },
    /// A new order whose first write may or may not have been made, and
    /// whose payment key could not be voided: the flow settles it after
    /// answering.
    #[error("order {} may not be recorded", order.order_id)]
    Unrecorded {
        order: Box<Order>,
        #[source]
        cause: StoreError,
    },
    /// The client's key could not be read (the store failed, or the
    /// service is shutting down): an earlier request with it may have
    /// charged its order.
    #[error("the Idempotency-Key could not be read")]
    KeyUnknown,
    #[error("a request with this Idempotency-Key is in flight")]
    KeyInFlight { order_id: Option<OrderId> },
    #[error("Idempotency-Key reused with a different body")]
    KeyReused,
    /// The key's order failed, nothing charged: nothing under the key
    /// will ever be, and the key starts no other order.
    #[error("the Idempotency-Key is spent")]
    KeySpent { order_id: OrderId },
    /// A new key could not be remembered: a request with it still on its
    /// way may yet start (and charge) the key's order.
    #[error("the idempotency store is full")]
    IdempotencyFull,
    /// A new key's order found no room in memory: nothing was written,
    /// but the key keeps the order's id for the client's retry, and a
    /// request with it still on its way may yet charge that order.
    #[error("no room for the order of this Idempotency-Key")]
    KeyNoRoom,
    /// Nothing was written: the service cannot take orders now.
    #[error("{0} unavailable")]
    Unavailable(&'static str),
    /// Refused at the edge: no client key, or over the client's limit.
    #[error(transparent)]
    Edge(LimitError),
    /// A refusal of a keyed request before its key was read (its body,
    /// say): this request created nothing, but an earlier one with the
    /// key may have charged its order, so the answer cannot say "none".
    #[error("{0}")]
    KeyUnread(Box<OrderError>),
}

/// Said after the detail of a refusal that never read the request's key.
pub const KEY_UNREAD: &str = "; this request was refused before its Idempotency-Key was read, and \
                              an earlier request with the key may have charged its order: retry \
                              with the same key";

impl OrderError {
    /// `self`, for a request that carried an Idempotency-Key, when the
    /// refusal came before the key was read.
    pub fn before_key(self, keyed: bool) -> Self {
        match keyed {
            true => Self::KeyUnread(Box::new(self)),
            false => self,
        }
    }
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

    /// What a client may conclude about money (`POST /orders` only).
    pub fn charge(&self) -> Option<ChargeOutcome> {
        match self {
            Self::NotFound(_) | Self::Store(_) => None,
            Self::Payment { status, .. } if *status == OrderStatus::Failed => {
                Some(ChargeOutcome::None)
            }
            Self::Payment { .. }
            | Self::OutcomeUnknown { .. }
            | Self::Unrecorded { .. }
            | Self::KeyInFlight { .. }
            | Self::KeyUnknown
            | Self::KeyNoRoom
            | Self::KeyUnread(_)
            | Self::IdempotencyFull => Some(ChargeOutcome::Unknown),
            _ => Some(ChargeOutcome::None),
        }
    }

    fn problem(&self) -> Problem {
        let problem = self.kind_problem();
        let problem = match self.charge() {
            Some(charge) => problem.with_charge(charge),
            None => problem,
        };
        // An order that may be charged is named, and where to read it.
        match (self.charge(), problem.order_id.clone()) {
            (Some(ChargeOutcome::Unknown), Some(id)) => {
                problem.with_location(format!("/orders/{id}"))
            }
            _ => problem,
        }
    }

    fn kind_problem(&self) -> Problem {
        match self {
            Self::KeyUnread(refusal) => {
                let mut problem = refusal.kind_problem();
                problem.detail.push_str(KEY_UNREAD);
                problem
            }
            Self::Body(problem) => problem.clone(),
            Self::Edge(refusal) => refusal.problem(),
            Self::BadHeader(e) => Problem::bad_request(e.to_string()),
            Self::Validation(errors) => Problem::validation(errors.clone()),
            Self::NotFound(id) => Problem::not_found(format!("no order {id}")),
            Self::Payment {
                order_id,
                status,
                cause,
            } => payment_problem(cause, *status).with_order_id(order_id),
            Self::Refused { cause, order_id } => named(refused_problem(cause), order_id),
            // What the store said is for the logs (`error_response`): a
            // driver's message tells a client nothing it can act on.
            Self::Store(_) => store_unavailable("retry shortly"),
            Self::OutcomeUnknown { order_id, .. } => outcome_unknown(order_id),
            Self::Unrecorded { order, .. } => unrecorded(&order.order_id),
            Self::KeyUnknown => key_unknown(),
            Self::KeyInFlight { order_id } => named(
                Problem::new(
                    StatusCode::CONFLICT,
                    "idempotency-key-in-flight",
                    "Request in flight",
                    "a request with this Idempotency-Key is being processed and may charge its \
                     order; retry with the same key shortly",
                )
                .with_retry_after(1),
                order_id,
            ),
            Self::KeyReused => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                "this Idempotency-Key was used with a different request body",
            ),
            Self::KeySpent { order_id } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-spent",
                "Idempotency-Key spent",
                "this Idempotency-Key's order failed with nothing charged, and nothing ever will \
                 be under the key; send the purchase again with a new key",
            )
            .with_order_id(order_id),
            Self::IdempotencyFull => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "idempotency-store-full",
                "Idempotency store full",
                "too many Idempotency-Keys are remembered; new keys are refused until old ones \
                 expire. Retry with the same key later; do not send a new request: a request \
                 with this key still on its way could charge its order",
            )
            .with_retry_after(60),
            Self::KeyNoRoom => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "order-store-full",
                "Order store full",
                "too many orders are pending: this Idempotency-Key's order could not be recorded \
                 now, and this request charged nothing. Retry with the same key later; do not \
                 send a new request: a request with this key still on its way could charge its \
                 order",
            )
            .with_retry_after(5),
            Self::Unavailable(what) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
                format!("the {what} is unavailable; nothing was charged; retry shortly"),
            )
            .with_retry_after(1),
        }
    }
}

/// `problem`, naming the order if there is one.
fn named(problem: Problem, order_id: &Option<OrderId>) -> Problem {
    match order_id {
        Some(id) => problem.with_order_id(id),
        None => problem,
    }
}

/// An order that may be charged, whose outcome could not be recorded.
fn outcome_unknown(order_id: &OrderId) -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "outcome-unknown",
        "Order outcome unknown",
        format!(
            "the order store failed while the order was placed, and the order may be charged; \
             it stays pending until payment-service tells. GET /orders/{order_id} until it is \
             completed or failed, or retry with the same Idempotency-Key; do not send a new \
             request for it"
        ),
    )
    .with_order_id(order_id)
}

/// A new order that may not have been recorded, nor its key voided.
fn unrecorded(order_id: &OrderId) -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "outcome-unknown",
        "Order outcome unknown",
        format!(
            "the order store and payment-service failed while the order was placed: it may have \
             been recorded, and then charged by a later attempt. GET /orders/{order_id} (not \
             found while unrecorded) until it is completed or failed; do not send a new request \
             for it"
        ),
    )
    .with_order_id(order_id)
}

/// A key that may name an order charged before, unreadable now.
fn key_unknown() -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "idempotency-key-unknown",
        "Idempotency-Key unreadable",
        "order-service cannot read this Idempotency-Key now (its store failed, or it is shutting \
         down): an earlier request with it may have charged its order. Retry with the same key; \
         do not send a new request",
    )
    .with_retry_after(1)
}

fn store_unavailable(then: &str) -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store-unavailable",
        "Order store unavailable",
        format!("the order store cannot be reached or did not answer in time; {then}"),
    )
    .with_retry_after(1)
}

/// Refused by the store, nothing charged.
fn refused_problem(cause: &StoreError) -> Problem {
    match cause {
        StoreError::Full => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "order-store-full",
            "Order store full",
            "too many orders are pending; new orders are refused until some settle; nothing \
             was charged",
        )
        .with_retry_after(5),
        _ => store_unavailable("nothing was charged, nor ever will be; retry shortly"),
    }
}

/// The problem for a call that ended without a charge, by what the order
/// stands as now: `failed`, nothing was ever charged; `pending`, an
/// attempt (now or earlier) may have charged it. A call refused before any
/// attempt (breaker, bulkhead, payment unreachable) charged nothing
/// itself, but an order pending from an earlier attempt is not "nothing
/// charged": that answer is 409, never a 503 that invites a new request.
fn payment_problem(e: &PaymentError, status: OrderStatus) -> Problem {
    let pending = status == OrderStatus::Pending;
    let refusal = match e {
        PaymentError::CircuitOpen { .. } => Some("the circuit breaker is open"),
        PaymentError::BulkheadFull => Some("too many payment calls are in flight"),
        PaymentError::Failed {
            reached: false,
            why: Failure::Unreachable,
        } => Some("payment-service is unreachable"),
        _ => None,
    };
    if let (true, Some(why)) = (pending, refusal) {
        return order_pending(why);
    }
    match e {
        PaymentError::Declined { detail } => Problem::new(
            StatusCode::PAYMENT_REQUIRED,
            "payment-declined",
            "Payment declined",
            detail.clone(),
        ),
        PaymentError::Voided => Problem::new(
            StatusCode::BAD_GATEWAY,
            "payment-voided",
            "Payment voided",
            "payment-service refuses this order's charge: an earlier request for it was answered \
             that nothing would be charged; nothing was charged, send a new request",
        ),
        PaymentError::Failed { why, .. } => {
            let outcome = match pending {
                true => {
                    "the outcome is unknown, the order stays pending until payment-service tells"
                }
                false => "nothing was charged",
            };
            Problem::new(
                StatusCode::BAD_GATEWAY,
                "payment-failed",
                "Payment failed",
                format!("{why}; {outcome}"),
            )
        }
        PaymentError::CircuitOpen { retry_after } => circuit_open(*retry_after),
        PaymentError::BulkheadFull => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "bulkhead-full",
            "Bulkhead limit reached",
            "too many payment calls in flight; nothing was charged",
        )
        .with_retry_after(1),
        PaymentError::TimedOut => Problem::new(
            StatusCode::GATEWAY_TIMEOUT,
            "payment-timeout",
            "Payment budget exceeded",
            match pending {
                true => {
                    "payment-service did not answer within the budget; the order stays pending until payment-service tells"
                }
                false => {
                    "payment-service did not answer within the budget; the order failed, nothing was charged"
                }
            },
        ),
    }
}

/// No attempt now, but an earlier one may have charged the order.
fn order_pending(why: &str) -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "order-pending",
        "Order pending",
        format!(
            "no attempt was made now ({why}), but an earlier one may have charged the order: it \
             stays pending until payment-service tells; read it, or retry with the same \
             Idempotency-Key later"
        ),
    )
}

fn circuit_open(retry_after: Option<std::time::Duration>) -> Problem {
    match retry_after {
        Some(retry_after) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "circuit-open",
            "Circuit breaker open",
            "payment-service is failing; calls are suspended; nothing was charged",
        )
        .with_retry_after(retry_after.as_secs_f64().ceil().max(1.0) as u64),
        // Held open by an operator: nothing is failing, and no probe is
        // scheduled to say when calls resume.
        None => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "circuit-open",
            "Circuit breaker open",
            "calls to payment-service are suspended by an operator (the circuit breaker is held \
             open); nothing was charged",
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
            tracing::warn!(error = %problem, failure = %self, cause, "order failed");
        }
        problem.to_response()
    }
}
