//! The order flow, outermost first: idempotency → record the order →
//! payment call → persist the outcome → complete or release the key.
//!
//! The order is written `pending` before the charge is attempted, so no
//! charge can exist for an order the store has never seen. A client key that
//! ended in a transient failure is released with its order id kept: the
//! client's retry resumes *that* order, charging under the same payment key.
//! An order left `pending` (its charge may exist) is handed to the
//! reconciler, which re-drives it until payment gives a definitive answer.

use std::sync::Arc;

use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, LOCATION};
use actors::idempotency::{IdempotencyStore, KeyLease, Reservation, Reserve, StoredResponse};
use actors::reconciler::{Reconciler, Track};
use common::domain::{IdempotencyKey, OrderId};
use observability::TraceLink;
use tracing::{Instrument, Span, field::Empty};

use crate::domain::{NewOrder, Order, OrderStatus};
use crate::error::OrderError;
use crate::metrics::OrderMetrics;
use crate::payment::{PaymentCall, PaymentError, Receipt};
use crate::reconcile::PendingOrder;
use crate::store::{OrderStore, StoreError};

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
    pub reconciler: Addr<Reconciler<PendingOrder>>,
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
        let (order, result) = charge_and_settle(self.store.as_ref(), &self.payments, order)
            .await
            .map_err(|e| OrderError::Store(e, Some(id)))?;
        if order.status == OrderStatus::Pending {
            // The outcome is unknown: the reconciler finds out.
            self.reconciler.do_send(Track {
                key: id.to_string(),
                payload: PendingOrder {
                    order_id: id,
                    link: TraceLink::current(),
                },
            });
        }
        match result {
            Ok(_) => Ok(order),
            Err(e) => Err(OrderError::Payment(id, e)),
        }
    }
}

/// Charges `order` through the pipeline and persists what it learned.
/// Shared by the request path and the reconciler.
pub async fn charge_and_settle(
    store: &dyn OrderStore,
    payments: &PaymentCall,
    order: Order,
) -> Result<(Order, Result<Receipt, PaymentError>), StoreError> {
    let id = order.order_id;
    let report = payments.charge(&order).await;
    let order = settle(order, &report.result);
    store
        .update(order.clone())
        .instrument(tracing::info_span!("persistOrder", order.id = %id))
        .await?;
    Ok((order, report.result))
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

/// The order's status after a payment call. A charge only counts as absent
/// when payment-service said so (a decline) or no attempt, now or before,
/// may have reached it: an order that was ever possibly charged stays
/// `pending` until a definitive answer.
fn settle(mut order: Order, result: &Result<Receipt, PaymentError>) -> Order {
    match result {
        Ok(receipt) => {
            order.status = OrderStatus::Completed;
            order.transaction_id = Some(receipt.transaction_id.clone());
            order.reason = None;
        }
        Err(e) => {
            order.maybe_charged |= e.outcome_unknown();
            order.status = match e {
                PaymentError::Declined { .. } => OrderStatus::Failed,
                _ if order.maybe_charged => OrderStatus::Pending,
                _ => OrderStatus::Failed,
            };
            order.reason = Some(e.to_string());
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use common::domain::PaymentDetails;
    use serde_json::value::RawValue;

    use super::*;

    fn order() -> Order {
        let raw = |s: &str| Some(RawValue::from_string(s.to_owned()).unwrap());
        let details =
            PaymentDetails::parse(&raw(r#""m""#), &raw("1.00"), &raw(r#""USD""#)).unwrap();
        Order::pending(OrderId::new(), &NewOrder { details })
    }

    fn failed(reached: bool) -> Result<Receipt, PaymentError> {
        Err(PaymentError::Failed {
            reached,
            detail: "500".into(),
        })
    }

    #[test]
    fn only_definitive_answers_settle_an_order() {
        let charged = settle(
            order(),
            &Ok(Receipt {
                transaction_id: "t".into(),
            }),
        );
        assert_eq!(charged.status, OrderStatus::Completed);
        assert_eq!(charged.transaction_id.as_deref(), Some("t"));
        let declined = settle(
            order(),
            &Err(PaymentError::Declined {
                detail: "no".into(),
            }),
        );
        assert_eq!(declined.status, OrderStatus::Failed);
        assert_eq!(settle(order(), &failed(true)).status, OrderStatus::Pending);
        assert_eq!(
            settle(order(), &Err(PaymentError::TimedOut)).status,
            OrderStatus::Pending
        );
        assert_eq!(settle(order(), &failed(false)).status, OrderStatus::Failed);
        let open = Err(PaymentError::CircuitOpen {
            retry_after: Duration::from_secs(1),
        });
        assert_eq!(settle(order(), &open).status, OrderStatus::Failed);
    }

    #[test]
    fn an_order_that_may_have_been_charged_stays_pending_until_told() {
        let pending = settle(order(), &failed(true));
        // A later call that never reaches payment proves nothing about the first.
        let open = Err(PaymentError::CircuitOpen {
            retry_after: Duration::from_secs(1),
        });
        let still = settle(pending, &open);
        assert_eq!(still.status, OrderStatus::Pending);
        assert_eq!(
            settle(
                still,
                &Ok(Receipt {
                    transaction_id: "t".into()
                })
            )
            .status,
            OrderStatus::Completed
        );
    }
}
