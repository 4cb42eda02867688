//! A client's retry under a key that names an order already: the order
//! is replayed if it completed, charged again (under the same payment key)
//! if it is still pending; if it failed, the key is spent, and says so.

use common::domain::OrderId;

use crate::domain::{NewOrder, Order, OrderStatus};
use crate::error::OrderError;
use crate::store::StoreError;

use super::settle::claim;
use super::{OrderLease, Orders};

impl Orders {
    /// A client retry of an order whose last call ended without a verdict
    /// (or whose flow went silent past the key's lease).
    pub(super) async fn resume(
        &self,
        id: OrderId,
        new: &NewOrder,
        lease: OrderLease,
    ) -> Result<Order, OrderError> {
        let unknown = |e: StoreError| OrderError::OutcomeUnknown {
            order_id: id,
            cause: e.into(),
        };
        let order = match self.store.get(id).await {
            // The key's lease ends with it: released.
            Err(e) => return Err(unknown(e)),
            // The key's order is not in the store: never written, or
            // forgotten to make room (ORDERS_MAX) after a call that may
            // have charged it. Written again as possibly charged, so that a
            // refusal now leaves it pending (never failed, never its key
            // spent) and a charge now replays payment's, under the same id.
            Ok(None) => {
                let order = Order {
                    maybe_charged: true,
                    ..Order::pending(id, new)
                };
                return self.place(order, Some(lease)).await;
            }
            Ok(Some(order)) => order,
        };
        let order = match order.status {
            OrderStatus::Pending => match claim(self.store.as_ref(), order).await {
                Ok(Ok(order)) => return self.charge(order, Some(lease)).await,
                Ok(Err(current)) => current,
                Err(e) => return Err(unknown(e)),
            },
            _ => order,
        };
        let result = match order.status {
            OrderStatus::Completed => Ok(order),
            // Final, never charged: the key is spent, and a request with
            // it never starts another order.
            OrderStatus::Failed => Err(OrderError::KeySpent { order_id: id }),
            // Moved between our read and our claim: let the client retry.
            OrderStatus::Pending => Err(OrderError::KeyInFlight { order_id: Some(id) }),
        };
        self.finish_key(lease, result).await
    }
}
