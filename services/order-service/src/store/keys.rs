//! Idempotency keys in this process, beside an in-process order store. One
//! process holds both, so there is no transaction to share: a reservation
//! takes the key, then records its order; a completion writes the outcome,
//! then completes the key. Should the process die between the two, both
//! are gone anyway.

use std::sync::Arc;

use actors::clock::SharedClock;
use actors::idempotency::{
    Answer, Complete, Completion, IdempotencyConfig, KeyBackend, KeyStoreError, MemoryKeys,
    Release, Reservation, Reserve, Stats,
};

use common::domain::OrderId;
use tracing::Instrument;

use super::{OrderStore, Settle, Updated};
use crate::domain::{Order, OrderStatus};

pub struct InProcessKeys {
    keys: MemoryKeys<OrderId>,
    orders: Arc<dyn OrderStore>,
}

impl InProcessKeys {
    pub fn new(config: IdempotencyConfig, clock: SharedClock, orders: Arc<dyn OrderStore>) -> Self {
        Self {
            keys: MemoryKeys::new(config, clock),
            orders,
        }
    }
}

/// A key in flight names its order only once the order can be read: its
/// holder writes it right after taking the key, and may find no room.
async fn in_flight(orders: &dyn OrderStore, order_id: OrderId) -> Reservation<OrderId> {
    let written = matches!(orders.get(order_id).await, Ok(Some(_)));
    Reservation::InFlight {
        order_id: written.then_some(order_id),
    }
}

impl KeyBackend for InProcessKeys {
    type Id = OrderId;
    type Record = Order;
    type Effect = Settle;

    fn reserve(&self, msg: Reserve<Order, OrderId>) -> Answer<Reservation<OrderId>> {
        let reservation = self
            .keys
            .reserve(&msg.key, &msg.fingerprint, &msg.order_id, msg.holder);
        let (keys, orders) = (self.keys.clone(), self.orders.clone());
        Box::pin(async move {
            match reservation {
                Reservation::New => {}
                Reservation::InFlight {
                    order_id: Some(order_id),
                } => {
                    return Ok(in_flight(&*orders, order_id).await);
                }
                other => return Ok(other),
            }
            // Under the request's span (the caller's), not this actor's:
            // the order's re-drives link to it, as to an unkeyed order's.
            match orders.insert(msg.record).instrument(msg.span).await {
                Ok(()) => Ok(Reservation::New),
                // The key keeps the order id (even with no room for the
                // order now): a retry resumes it, and writes it then. A key
                // taken over meanwhile (this insert outlived the lease) is
                // another request's, whose order this one cannot speak for.
                Err(e) => match keys.release(&msg.key, msg.holder) {
                    true => Err(e.into()),
                    false => Err(KeyStoreError::Uncertain(Arc::new(e))),
                },
            }
        })
    }

    fn complete(&self, msg: Complete<Settle>) -> Answer<Completion<Settle>> {
        let (keys, orders) = (self.keys.clone(), self.orders.clone());
        Box::pin(async move {
            if let Settle::Order { order, from } = msg.effect
                && let Updated::Stale(current) = orders.update(order, from).await?
            {
                return Ok(Err(current));
            }
            keys.complete(&msg.key, msg.holder, msg.response);
            Ok(Ok(()))
        })
    }

    fn release(&self, msg: Release) -> Answer<()> {
        self.keys.release(&msg.key, msg.holder);
        Box::pin(std::future::ready(Ok(())))
    }

    /// Never forgets the key of a pending order: its client's retry must
    /// resume that order, not start a second one.
    fn sweep(&self) -> Answer<usize> {
        let expired = self.keys.expired_keys();
        let (keys, orders) = (self.keys.clone(), self.orders.clone());
        Box::pin(async move {
            let mut removed = 0;
            for (key, order_id) in expired {
                let keep = match orders.get(order_id).await {
                    Ok(Some(order)) => order.status == OrderStatus::Pending,
                    Ok(None) => false,
                    // Unreadable now: look again at the next sweep.
                    Err(_) => true,
                };
                if !keep && keys.forget(&key) {
                    removed += 1;
                }
            }
            Ok(removed)
        })
    }

    fn stats(&self) -> Answer<Stats> {
        let stats = self.keys.stats();
        Box::pin(std::future::ready(Ok(stats)))
    }
}
