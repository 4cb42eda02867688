//! A client's retry under a key that names an order already: the order
//! is replayed if it completed, charged again (under the same payment key)
//! if it is still pending, and left behind if it failed — its key is
//! forgotten and taken anew, for a new order.

use common::domain::OrderId;
use tracing::Span;

use crate::domain::{NewOrder, Order, OrderStatus};
use crate::error::OrderError;
use crate::store::{Settle, StoreError};

use super::settle::claim;
use super::{OrderLease, Orders};

impl Orders {
    /// A client retry of an order whose last call ended without a verdict
    /// (or whose flow went silent past the key's lease). `None`: the key's
    /// order had failed — final, never charged — and the key is forgotten,
    /// to be taken anew for a new order.
    pub(super) async fn resume(
        &self,
        id: OrderId,
        new: &NewOrder,
        mut lease: OrderLease,
    ) -> Option<Result<Order, OrderError>> {
        let unknown = |e: StoreError| OrderError::OutcomeUnknown {
            order_id: id,
            cause: e.to_string(),
        };
        let order = match self.store.get(id).await {
            // The key's lease ends with it: released.
            Err(e) => return Some(Err(unknown(e))),
            // The key's order is not in the store: never written, or
            // forgotten to make room (ORDERS_MAX) after a call that may
            // have charged it. Written again as possibly charged, so that a
            // refusal now leaves it pending (never failed, never its key
            // forgotten) and a charge now replays payment's, under the same id.
            Ok(None) => {
                let order = Order {
                    maybe_charged: true,
                    ..Order::pending(id, new)
                };
                return Some(self.place(order, Some(lease)).await);
            }
            Ok(Some(order)) => order,
        };
        let order = match order.status {
            OrderStatus::Pending => {
                self.track(id);
                match claim(self.store.as_ref(), order).await {
                    Ok(Ok(order)) => return Some(self.charge(order, Some(lease)).await),
                    Ok(Err(current)) => current,
                    Err(e) => return Some(Err(unknown(e))),
                }
            }
            _ => order,
        };
        match order.status {
            OrderStatus::Completed => Some(self.finish_key(lease, Ok(order)).await),
            OrderStatus::Failed => match lease.forget(Settle::AsItStands, Span::current()).await {
                Ok(Ok(())) => None,
                // Still on the failed order: nothing was charged by this
                // request, and its retry will try again.
                _ => Some(Err(OrderError::Refused {
                    cause: StoreError::Unavailable("the key was not forgotten".into()),
                    order_id: None,
                })),
            },
            // Moved between our read and our claim: let the client retry.
            OrderStatus::Pending => Some(
                self.finish_key(lease, Err(OrderError::KeyInFlight { order_id: Some(id) }))
                    .await,
            ),
        }
    }
}
