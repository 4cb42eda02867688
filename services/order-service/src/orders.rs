//! The order flow: record the order as `pending`, charge it, persist the
//! outcome. The order is written before the charge is attempted, so no
//! charge can exist for an order the store has never seen.

use common::domain::{IdempotencyKey, OrderId};
use tracing::Instrument;

use crate::domain::{NewOrder, Order, OrderStatus};
use crate::error::OrderError;
use crate::payment::{PaymentCall, PaymentError, Receipt};
use crate::store::OrderStore;

pub async fn place_order(
    store: &dyn OrderStore,
    payments: &PaymentCall,
    new: NewOrder,
    key: Option<&IdempotencyKey>,
) -> Result<Order, OrderError> {
    let order = Order::pending(OrderId::new(), &new);
    let span = tracing::info_span!(
        "createOrder",
        order.id = %order.order_id,
        merchant.id = %order.merchant_id,
        order.amount = %order.amount,
        order.currency = %order.currency,
        idempotency.key = key.map(IdempotencyKey::as_str),
    );
    async move {
        let id = order.order_id;
        store
            .insert(order.clone())
            .await
            .map_err(|e| OrderError::Store(e, Some(id)))?;
        let result = payments.charge(&order).await;
        let order = settle(order, &result);
        store
            .update(order.clone())
            .instrument(tracing::info_span!("persistOrder", order.id = %id))
            .await
            .map_err(|e| OrderError::Store(e, Some(id)))?;
        match result {
            Ok(_) => Ok(order),
            Err(e) => Err(OrderError::Payment(id, e)),
        }
    }
    .instrument(span)
    .await
}

/// The order's status after a payment call: a charge only counts as absent
/// when payment-service said so or the request provably never left.
fn settle(mut order: Order, result: &Result<Receipt, PaymentError>) -> Order {
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
