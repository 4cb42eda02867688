//! The rules the flow applies, apart from the flow: what a payment call's
//! result makes of an order, what the flow answers once the order stands,
//! and what its key keeps of that answer.

use actors::idempotency::StoredResponse;
use tracing::{Instrument, field::Empty};

use crate::domain::{Order, OrderStatus};
use crate::error::OrderError;
use crate::payment::{Failure, PaymentCall, PaymentError, Receipt};
use crate::store::{OrderStore, StoreError, Updated};

use super::response::{created, spent};

/// The order as stored before its first call: should the flow never settle
/// it, whoever finds it must assume a charge may exist. (The flow's own
/// copy says what the order did before the call: nothing.)
pub(super) fn possibly_charged(order: &Order) -> Order {
    Order {
        maybe_charged: true,
        calls: 1,
        ..order.clone()
    }
}

/// The order's status after a payment call. A charge only counts as absent
/// when payment-service said so (a decline, a voided key) or no attempt,
/// now or before, may have reached it: an order that was ever possibly
/// charged stays `pending` until a definitive answer.
pub(super) fn settle(mut order: Order, result: &Result<Receipt, PaymentError>) -> Order {
    match result {
        Ok(receipt) => {
            order.status = OrderStatus::Completed;
            order.transaction_id = Some(receipt.transaction_id.clone());
            order.reason = None;
        }
        Err(e) => {
            order.maybe_charged |= e.outcome_unknown();
            order.status = match e {
                PaymentError::Declined { .. } | PaymentError::Voided => OrderStatus::Failed,
                _ if order.maybe_charged => OrderStatus::Pending,
                _ => OrderStatus::Failed,
            };
            order.reason = Some(e.to_string());
        }
    }
    order
}

/// The flow's answer once the order stands as `order`, after a call that
/// ended with `result`.
pub(super) fn answer(
    order: Order,
    result: Result<Receipt, PaymentError>,
) -> Result<Order, OrderError> {
    let id = order.order_id;
    match result {
        // Completed, by this call or (first) by another writer: 201.
        _ if order.status == OrderStatus::Completed => Ok(order),
        Err(cause) => Err(OrderError::Payment {
            order_id: id,
            status: order.status,
            cause,
        }),
        // Charged, yet the order was settled otherwise: the store's
        // rules exclude it; never answer 201 for an order not completed.
        Ok(receipt) => {
            tracing::error!(order.id = %id, transaction.id = %receipt.transaction_id, status = ?order.status, "charged, but the order is not completed");
            Err(OrderError::Payment {
                order_id: id,
                status: order.status,
                cause: PaymentError::Failed {
                    reached: true,
                    why: Failure::SettledOtherwise,
                },
            })
        }
    }
}

/// What the client's key keeps of the flow's answer.
pub(super) enum KeyEnding {
    /// The key's final word, replayed to every later request with it.
    Complete(StoredResponse),
    /// Transient: the key keeps its order id, and a retry resumes it.
    Release,
}

/// Created, or declined: replayed as answered. Failed otherwise (nothing
/// charged, ever): the key is spent — every later request with it is told
/// so, and none starts another order, which a request still on its way
/// under the key (a client's earlier try, a double submit) could charge.
pub(super) fn key_ending(result: &Result<Order, OrderError>) -> KeyEnding {
    match result {
        Ok(order) => KeyEnding::Complete(created(order)),
        Err(
            e @ OrderError::Payment {
                cause: PaymentError::Declined { .. },
                ..
            },
        ) => KeyEnding::Complete(e.stored_response()),
        Err(OrderError::Payment {
            status: OrderStatus::Failed,
            order_id,
            ..
        }) => KeyEnding::Complete(spent(*order_id)),
        Err(e @ OrderError::KeySpent { .. }) => KeyEnding::Complete(e.stored_response()),
        Err(_) => KeyEnding::Release,
    }
}

/// Takes a `pending` order into a new call: counts the call (a
/// compare-and-set on the status *and* the count read, so two flows never
/// hold the same count). Answers the order to charge — its `maybe_charged`
/// saying what the order may have done *before* this call — or, when
/// another writer moved it first, the order as it stands.
pub async fn claim(
    store: &dyn OrderStore,
    read: Order,
) -> Result<Result<Order, Order>, StoreError> {
    let prior = read.maybe_charged;
    let claimed = Order {
        maybe_charged: true,
        calls: read.calls + 1,
        ..read
    };
    Ok(
        match store.claim(claimed.clone(), OrderStatus::Pending).await? {
            Updated::Written => Ok(Order {
                maybe_charged: prior,
                ..claimed
            }),
            Updated::Stale(current) => Err(current),
        },
    )
}

/// A payment call's result, and the order as it stands after it.
pub type Charged = (Order, Result<Receipt, PaymentError>);

/// The order's outcome could not be written: it stands as before the call.
pub struct Unsettled {
    /// The outcome the write was to record.
    pub settled: Order,
    pub result: Result<Receipt, PaymentError>,
    pub cause: StoreError,
}

/// Charges `order` through the pipeline and writes what the call learned
/// with `write` — the one settle path, the request's flow's (which ends
/// its key in the same write) and the reconciler's. Another writer
/// first, the order is answered as it stands.
pub async fn charge_and_settle(
    payments: &PaymentCall,
    order: Order,
    write: impl AsyncFnOnce(&Order, &Result<Receipt, PaymentError>) -> Result<Updated, StoreError>,
) -> Result<Charged, Unsettled> {
    let id = order.order_id;
    let result = payments.charge(&order).await.result;
    let settled = settle(order, &result);
    let span = tracing::info_span!("persistOrder", order.id = %id, order.stale = Empty);
    match write(&settled, &result).instrument(span.clone()).await {
        Ok(Updated::Written) => Ok((settled, result)),
        Ok(Updated::Stale(current)) => {
            span.record("order.stale", true);
            Ok((current, result))
        }
        Err(cause) => Err(Unsettled {
            settled,
            result,
            cause,
        }),
    }
}

/// The reconciler's write: the outcome, from `pending`.
pub async fn write_outcome(store: &dyn OrderStore, settled: &Order) -> Result<Updated, StoreError> {
    store.update(settled.clone(), OrderStatus::Pending).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn order() -> Order {
        Order::example()
    }

    fn failed(reached: bool) -> Result<Receipt, PaymentError> {
        Err(PaymentError::Failed {
            reached,
            why: Failure::Answered(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
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
            retry_after: Some(Duration::from_secs(1)),
        });
        assert_eq!(settle(order(), &open).status, OrderStatus::Failed);
    }

    #[test]
    fn an_order_that_may_have_been_charged_stays_pending_until_told() {
        let pending = settle(order(), &failed(true));
        // A later call that never reaches payment proves nothing about the first.
        let open = Err(PaymentError::CircuitOpen {
            retry_after: Some(Duration::from_secs(1)),
        });
        let still = settle(pending.clone(), &open);
        assert_eq!(still.status, OrderStatus::Pending);
        // A voided key proves it: nothing was, nor ever will be, charged.
        assert_eq!(
            settle(pending, &Err(PaymentError::Voided)).status,
            OrderStatus::Failed
        );
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

    #[test]
    fn a_key_keeps_final_answers_is_spent_by_failed_orders_and_released_otherwise() {
        let completed = Order {
            status: OrderStatus::Completed,
            ..order()
        };
        assert!(matches!(
            key_ending(&Ok(completed)),
            KeyEnding::Complete(r) if r.status == 201
        ));
        let declined = settle(
            order(),
            &Err(PaymentError::Declined {
                detail: "no".into(),
            }),
        );
        let declined = answer(
            declined,
            Err(PaymentError::Declined {
                detail: "no".into(),
            }),
        );
        assert!(matches!(key_ending(&declined), KeyEnding::Complete(r) if r.status == 402));
        let refused = answer(settle(order(), &failed(false)), failed(false));
        assert!(matches!(key_ending(&refused), KeyEnding::Complete(r) if r.status == 422));
        let unknown = answer(settle(order(), &failed(true)), failed(true));
        assert!(matches!(key_ending(&unknown), KeyEnding::Release));
    }
}
