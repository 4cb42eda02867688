//! The default store: a map in this process. Fast and simple; an
//! order-service restart forgets every order (see the README's limits).
//!
//! Many small maps (dashmap shards) of boxed orders rather than one map
//! behind one lock: the map only grows, and each time one big map doubled,
//! every request of both workers waited for the copy (tens of milliseconds
//! at a few hundred thousand orders: the p99 of a whole load run). A shard
//! grows alone, and moves pointers, not orders.

use async_trait::async_trait;
use common::domain::OrderId;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::{OrderStore, StoreError, Updated};
use crate::domain::{Order, OrderStatus};

pub struct MemoryStore {
    orders: DashMap<OrderId, Box<Order>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            orders: DashMap::with_shard_amount(SHARDS),
        }
    }
}

const SHARDS: usize = 128;

impl MemoryStore {
    /// The compare-and-set under both writes: `order` replaces the stored
    /// one when `allowed(stored, order)`; the stored count of calls never
    /// goes down.
    fn write_if(
        &self,
        order: Order,
        allowed: impl FnOnce(&Order, &Order) -> bool,
    ) -> Result<Updated, StoreError> {
        match self.orders.get_mut(&order.order_id).as_deref_mut() {
            Some(slot) if allowed(slot, &order) => {
                let calls = slot.calls.max(order.calls);
                **slot = Order { calls, ..order };
                Ok(Updated::Written)
            }
            Some(slot) => Ok(Updated::Stale((**slot).clone())),
            None => Err(StoreError::Missing(order.order_id)),
        }
    }
}

#[async_trait]
impl OrderStore for MemoryStore {
    async fn insert(&self, order: Order) -> Result<(), StoreError> {
        match self.orders.entry(order.order_id) {
            Entry::Occupied(_) => Err(StoreError::Duplicate(order.order_id)),
            Entry::Vacant(slot) => {
                slot.insert(Box::new(order));
                Ok(())
            }
        }
    }

    async fn update(&self, order: Order, from: OrderStatus) -> Result<Updated, StoreError> {
        self.write_if(order, |slot, order| {
            slot.status == from
                && from.may_become(order.status)
                && !(order.status == OrderStatus::Failed && order.calls < slot.calls)
        })
    }

    async fn claim(&self, order: Order, from: OrderStatus) -> Result<Updated, StoreError> {
        self.write_if(order, |slot, order| {
            slot.status == from && from.may_become(order.status) && slot.calls + 1 == order.calls
        })
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        Ok(self.orders.get(&id).map(|order| (**order).clone()))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> Order {
        Order::example()
    }

    fn with(order: &Order, status: OrderStatus) -> Order {
        Order {
            status,
            ..order.clone()
        }
    }

    #[actix_rt::test]
    async fn a_stale_writer_cannot_move_a_completed_order_back() {
        let store = MemoryStore::default();
        let order = pending();
        store.insert(order.clone()).await.unwrap();
        let completed = Order {
            transaction_id: Some("txn".into()),
            ..with(&order, OrderStatus::Completed)
        };
        // Two writers read it pending; the faster one completes it...
        let first = store.update(completed.clone(), OrderStatus::Pending).await;
        assert_eq!(first.unwrap(), Updated::Written);
        // ...and the slower one's "still pending" is refused, with the truth.
        let late = Order {
            reason: Some("payment budget ran out".into()),
            ..order.clone()
        };
        let second = store.update(late, OrderStatus::Pending).await.unwrap();
        assert_eq!(second, Updated::Stale(completed.clone()));
        assert_eq!(store.get(order.order_id).await.unwrap(), Some(completed));
    }

    #[actix_rt::test]
    async fn completed_is_final_whatever_the_writer_claims_to_have_read() {
        let store = MemoryStore::default();
        let order = with(&pending(), OrderStatus::Completed);
        store.insert(order.clone()).await.unwrap();
        for to in [OrderStatus::Pending, OrderStatus::Failed] {
            let tried = store
                .update(with(&order, to), OrderStatus::Completed)
                .await
                .unwrap();
            assert_eq!(tried, Updated::Stale(order.clone()));
        }
    }

    #[actix_rt::test]
    async fn only_the_moves_of_an_order_s_life_are_allowed() {
        use OrderStatus::*;
        for (from, to, allowed) in [
            (Pending, Pending, true),
            (Pending, Completed, true),
            (Pending, Failed, true),
            // A retry of an order that was refused before any attempt.
            (Failed, Pending, true),
            (Failed, Completed, false),
            (Completed, Pending, false),
            (Completed, Failed, false),
        ] {
            let store = MemoryStore::default();
            let order = with(&pending(), from);
            store.insert(order.clone()).await.unwrap();
            let written = store.update(with(&order, to), from).await.unwrap();
            assert_eq!(written == Updated::Written, allowed, "{from:?} → {to:?}");
        }
    }

    #[actix_rt::test]
    async fn a_refusal_cannot_fail_an_order_another_flow_has_taken_into_a_call() {
        let store = MemoryStore::default();
        let first = Order {
            calls: 1,
            ..pending()
        };
        store.insert(first.clone()).await.unwrap();
        // A second flow (the reconciler, a retry) takes it into a call...
        let second = Order {
            calls: 2,
            ..first.clone()
        };
        let claimed = store.update(second.clone(), OrderStatus::Pending).await;
        assert_eq!(claimed.unwrap(), Updated::Written);
        // ...so the first flow's "my call never reached payment" proves nothing.
        let refused = store
            .update(with(&first, OrderStatus::Failed), OrderStatus::Pending)
            .await
            .unwrap();
        assert_eq!(refused, Updated::Stale(second.clone()));
        // Its stale "pending" may land, but never lowers the count.
        let late = store.update(first.clone(), OrderStatus::Pending).await;
        assert_eq!(late.unwrap(), Updated::Written);
        let stored = store.get(first.order_id).await.unwrap().unwrap();
        assert_eq!(stored.calls, 2);
        // A definitive answer from any flow still settles it.
        let completed = with(&first, OrderStatus::Completed);
        let done = store.update(completed, OrderStatus::Pending).await;
        assert_eq!(done.unwrap(), Updated::Written);
    }

    #[actix_rt::test]
    async fn of_two_flows_that_read_the_same_count_only_one_claims_the_order() {
        let store = MemoryStore::default();
        let read = Order {
            calls: 1,
            ..pending()
        };
        store.insert(read.clone()).await.unwrap();
        let next = Order {
            calls: 2,
            ..read.clone()
        };
        let first = store.claim(next.clone(), OrderStatus::Pending).await;
        assert_eq!(first.unwrap(), Updated::Written);
        let second = store.claim(next.clone(), OrderStatus::Pending).await;
        assert_eq!(second.unwrap(), Updated::Stale(next));
    }

    #[actix_rt::test]
    async fn updating_an_unknown_order_is_an_error() {
        let store = MemoryStore::default();
        let missing = store.update(pending(), OrderStatus::Pending).await;
        assert!(matches!(missing, Err(StoreError::Missing(_))));
    }
}
