//! The order flow, outermost first: idempotency → record the order →
//! payment call → persist the outcome → complete or release the key.
//!
//! The order is written `pending` before the charge is attempted, so no
//! charge can exist for an order the store has never seen. A client key that
//! ended in a transient failure is released with its order id kept: the
//! client's retry resumes *that* order, charging under the same payment key.

use std::sync::Arc;

use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, LOCATION};
use actors::idempotency::{IdempotencyStore, KeyLease, Reservation, Reserve, StoredResponse};
use common::domain::{IdempotencyKey, OrderId};
use tracing::{Instrument, Span, field::Empty};

use crate::domain::{NewOrder, Order, OrderStatus};
use crate::error::OrderError;
use crate::metrics::OrderMetrics;
use crate::payment::{PaymentCall, PaymentError};
use crate::store::OrderStore;

/// The answer to `POST /orders`, as sent and as replayed.
pub struct Answer {
    pub response: StoredResponse,
    pub replayed: bool,
}

/// Everything the flow needs; one per worker.
pub struct Orders {
    pub store: Arc<dyn OrderStore>,
    pub payments: PaymentCall,
    pub idempotency: Addr<IdempotencyStore>,
    pub metrics: OrderMetrics,
}

impl Orders {
    pub async fn create(
        &self,
        new: NewOrder,
        key: Option<IdempotencyKey>,
    ) -> Result<Answer, OrderError> {
        let candidate = OrderId::new();
        let span = tracing::info_span!(
            "createOrder",
            order.id = Empty,
            merchant.id = %new.details.merchant_id,
            order.amount = %new.details.amount,
            order.currency = %new.details.currency,
            idempotency.key = key.as_ref().map(IdempotencyKey::as_str),
        );
        let result = self
            .create_in_span(new, key, candidate)
            .instrument(span)
            .await;
        self.count(&result);
        result
    }

    fn count(&self, result: &Result<Answer, OrderError>) {
        let m = &self.metrics;
        match result {
            Ok(answer) if answer.replayed => m.idempotency_hits.inc(),
            Ok(_) => m.orders.with_label_values(&["completed"]).inc(),
            Err(OrderError::KeyInFlight) => m
                .idempotency_conflicts
                .with_label_values(&["in_flight"])
                .inc(),
            Err(OrderError::KeyReused) => m
                .idempotency_conflicts
                .with_label_values(&["mismatch"])
                .inc(),
            Err(OrderError::IdempotencyFull) => {
                m.idempotency_conflicts.with_label_values(&["full"]).inc()
            }
            Err(OrderError::Payment(_, e)) => {
                let status = if e.outcome_unknown() {
                    "pending"
                } else {
                    "failed"
                };
                m.orders.with_label_values(&[status]).inc();
            }
            Err(_) => {}
        }
    }

    async fn create_in_span(
        &self,
        new: NewOrder,
        key: Option<IdempotencyKey>,
        candidate: OrderId,
    ) -> Result<Answer, OrderError> {
        let span = Span::current();
        let Some(key) = key else {
            span.record("order.id", candidate.to_string());
            let order = self.place(Order::pending(candidate, &new)).await?;
            return Ok(Answer {
                response: created(&order),
                replayed: false,
            });
        };

        let reservation = self
            .idempotency
            .send(Reserve {
                key: key.to_string(),
                fingerprint: new.fingerprint(),
                order_id: candidate.to_string(),
                span: span.clone(),
            })
            .await
            .map_err(|_| OrderError::Unavailable("idempotency store"))?
            .map_err(|_| OrderError::Unavailable("idempotency store"))?;
        let lease = || KeyLease::new(self.idempotency.clone(), key.to_string());
        let (lease, result) = match reservation {
            Reservation::Replay(response) => {
                tracing::info!(idempotency.key = %key, "idempotent_request_cached");
                return Ok(Answer {
                    response: (*response).clone(),
                    replayed: true,
                });
            }
            Reservation::InFlight => return Err(OrderError::KeyInFlight),
            Reservation::Mismatch => return Err(OrderError::KeyReused),
            Reservation::Full => return Err(OrderError::IdempotencyFull),
            Reservation::New => {
                let lease = lease();
                span.record("order.id", candidate.to_string());
                (lease, self.place(Order::pending(candidate, &new)).await)
            }
            Reservation::Resume { order_id } => {
                let lease = lease();
                let id = OrderId::parse(&order_id)
                    .map_err(|_| OrderError::Unavailable("idempotency store"))?;
                span.record("order.id", order_id);
                (lease, self.resume(id, &new).await)
            }
        };

        let response = match &result {
            Ok(order) => created(order),
            Err(e) => e.stored_response(),
        };
        if is_definitive(&result) {
            lease.complete(response.clone(), span);
        } else {
            lease.release(span);
        }
        result.map(|_| Answer {
            response,
            replayed: false,
        })
    }

    /// A new order: recorded `pending`, then charged.
    async fn place(&self, order: Order) -> Result<Order, OrderError> {
        let id = order.order_id;
        self.store
            .insert(order.clone())
            .await
            .map_err(|e| OrderError::Store(e, Some(id)))?;
        self.charge(order).await
    }

    /// A client retry of an order whose last call ended without a verdict.
    async fn resume(&self, id: OrderId, new: &NewOrder) -> Result<Order, OrderError> {
        let existing = self
            .store
            .get(id)
            .await
            .map_err(|e| OrderError::Store(e, Some(id)))?;
        match existing {
            Some(order) if order.status == OrderStatus::Completed => Ok(order),
            Some(mut order) => {
                order.status = OrderStatus::Pending;
                order.reason = None;
                self.store
                    .update(order.clone())
                    .await
                    .map_err(|e| OrderError::Store(e, Some(id)))?;
                self.charge(order).await
            }
            None => self.place(Order::pending(id, new)).await,
        }
    }

    async fn charge(&self, order: Order) -> Result<Order, OrderError> {
        let id = order.order_id;
        let report = self.payments.charge(&order).await;
        let order = settle(order, &report.result);
        self.store
            .update(order.clone())
            .instrument(tracing::info_span!("persistOrder", order.id = %id))
            .await
            .map_err(|e| OrderError::Store(e, Some(id)))?;
        match report.result {
            Ok(_) => Ok(order),
            Err(e) => Err(OrderError::Payment(id, e)),
        }
    }
}

/// Answers that are the operation's final word, replayed for the key:
/// created, or declined. Anything else is transient and releases the key.
fn is_definitive(result: &Result<Order, OrderError>) -> bool {
    matches!(
        result,
        Ok(_) | Err(OrderError::Payment(_, PaymentError::Declined { .. }))
    )
}

fn created(order: &Order) -> StoredResponse {
    StoredResponse {
        status: StatusCode::CREATED.as_u16(),
        headers: vec![
            (LOCATION.to_string(), order.location()),
            (CONTENT_TYPE.to_string(), "application/json".to_owned()),
        ],
        body: serde_json::to_vec(order).unwrap_or_default(),
    }
}

/// The order's status after a payment call: a charge only counts as absent
/// when payment-service said so or the request provably never left.
fn settle(mut order: Order, result: &Result<crate::payment::Receipt, PaymentError>) -> Order {
    match result {
        Ok(receipt) => {
            order.status = OrderStatus::Completed;
            order.transaction_id = Some(receipt.transaction_id.clone());
            order.reason = None;
        }
        Err(e) => {
            order.status = if e.outcome_unknown() {
                OrderStatus::Pending
            } else {
                OrderStatus::Failed
            };
            order.reason = Some(e.to_string());
        }
    }
    order
}
