//! The default store: a map in this process. Fast and simple; an
//! order-service restart forgets every order (see the README's limits).
//!
//! Bounded: beyond `max_orders` (ORDERS_MAX), each new order makes room by
//! forgetting the order settled longest ago (completed or failed: a
//! completed key replays its stored response without it, and a retry under
//! a key whose order is gone re-creates it as possibly charged). A pending
//! order is never forgotten: the reconciler and the client's retry must
//! find it. Only when every order held is pending is a new one refused
//! (503), and nothing is charged.
//!
//! Many small maps (dashmap shards) of boxed orders rather than one map
//! behind one lock: the map only grows, and each time one big map doubled,
//! every request of both workers waited for the copy (tens of milliseconds
//! at a few hundred thousand orders: the p99 of a whole load run). A shard
//! grows alone, and moves pointers, not orders.

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;
use common::domain::OrderId;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::{OrderStore, StoreError, Updated};
use crate::domain::{Order, OrderStatus};

pub struct MemoryStore {
    orders: DashMap<OrderId, Box<Order>>,
    room: Mutex<Room>,
    max_orders: usize,
}

/// What eviction needs, under one lock taken before any shard's (never
/// while holding one).
#[derive(Default)]
struct Room {
    /// Orders held.
    held: usize,
    /// Orders in the order they settled, each time they settled: an entry
    /// whose order has gone, or is pending again, is skipped when reached.
    settled: VecDeque<OrderId>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_ORDERS)
    }
}

const SHARDS: usize = 128;
pub const DEFAULT_MAX_ORDERS: usize = 1_000_000;

impl MemoryStore {
    pub fn new(max_orders: usize) -> Self {
        Self {
            orders: DashMap::with_shard_amount(SHARDS),
            room: Mutex::default(),
            max_orders: max_orders.max(1),
        }
    }

    fn room(&self) -> std::sync::MutexGuard<'_, Room> {
        self.room.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets the order settled longest ago; answers whether it made room.
    /// The status check and the removal are one step under the shard's
    /// lock, so an order cannot become pending between. Amortized O(1):
    /// each entry is passed once.
    fn evict_one(&self, room: &mut Room) -> bool {
        while let Some(id) = room.settled.pop_front() {
            if self
                .orders
                .remove_if(&id, |_, order| order.status != OrderStatus::Pending)
                .is_some()
            {
                room.held -= 1;
                return true;
            }
        }
        false
    }

    /// The compare-and-set under both writes: `order` replaces the stored
    /// one when `allowed(stored, order)`; the stored count of calls never
    /// goes down.
    fn write_if(
        &self,
        order: Order,
        allowed: impl FnOnce(&Order, &Order) -> bool,
    ) -> Result<Updated, StoreError> {
        let (id, status) = (order.order_id, order.status);
        let written = match self.orders.get_mut(&id).as_deref_mut() {
            Some(slot) if allowed(slot, &order) => {
                let calls = slot.calls.max(order.calls);
                **slot = Order { calls, ..order };
                Updated::Written
            }
            Some(slot) => return Ok(Updated::Stale((**slot).clone())),
            None => return Err(StoreError::Missing(id)),
        };
        // The shard's lock is released: now the room's may be taken.
        if status != OrderStatus::Pending {
            self.room().settled.push_back(id);
        }
        Ok(written)
    }
}

#[async_trait]
impl OrderStore for MemoryStore {
    async fn insert(&self, order: Order) -> Result<(), StoreError> {
        let mut room = self.room();
        if room.held >= self.max_orders && !self.evict_one(&mut room) {
            return Err(StoreError::Full);
        }
        let (id, settled) = (order.order_id, order.status != OrderStatus::Pending);
        match self.orders.entry(id) {
            Entry::Occupied(_) => Err(StoreError::Duplicate(id)),
            Entry::Vacant(slot) => {
                slot.insert(Box::new(order));
                room.held += 1;
                if settled {
                    room.settled.push_back(id);
                }
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
    async fn room_is_made_past_any_number_of_pending_orders() {
        let store = MemoryStore::new(101);
        for _ in 0..100 {
            store.insert(Order::example()).await.unwrap();
        }
        let last = Order::example();
        store.insert(last.clone()).await.unwrap();
        let done = with(&last, OrderStatus::Completed);
        store.update(done, OrderStatus::Pending).await.unwrap();
        // 100 pending orders came first; the one completed order makes room.
        store.insert(Order::example()).await.unwrap();
        assert_eq!(store.get(last.order_id).await.unwrap(), None);
        assert_eq!(store.orders.len(), 101);
    }

    #[actix_rt::test]
    async fn beyond_its_bound_the_oldest_settled_order_makes_room_never_a_pending_one() {
        let store = MemoryStore::new(3);
        let orders: Vec<Order> = (0..3).map(|_| Order::example()).collect();
        for order in &orders {
            store.insert(order.clone()).await.unwrap();
        }
        // The oldest is pending, the second completed, the third failed.
        let completed = with(&orders[1], OrderStatus::Completed);
        store.update(completed, OrderStatus::Pending).await.unwrap();
        let failed = with(&orders[2], OrderStatus::Failed);
        store.update(failed, OrderStatus::Pending).await.unwrap();

        let fourth = Order::example();
        store.insert(fourth.clone()).await.unwrap();
        let held = |id| store.orders.contains_key(&id);
        assert!(held(orders[0].order_id), "pending: kept");
        assert!(
            !held(orders[1].order_id),
            "the oldest settled one made room"
        );
        assert!(held(orders[2].order_id) && held(fourth.order_id));

        let fifth = Order::example();
        store.insert(fifth.clone()).await.unwrap();
        assert!(!held(orders[2].order_id));
        assert!(held(orders[0].order_id));
        assert_eq!(store.orders.len(), 3);

        // Nothing but pending orders: a new one is refused, none is lost.
        let sixth = Order::example();
        assert!(matches!(
            store.insert(sixth.clone()).await,
            Err(StoreError::Full)
        ));
        for id in [orders[0].order_id, fourth.order_id, fifth.order_id] {
            assert_eq!(
                store.get(id).await.unwrap().unwrap().status,
                OrderStatus::Pending
            );
        }
        assert_eq!(store.get(sixth.order_id).await.unwrap(), None);
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
            // Failed is final: it was answered "nothing charged, ever".
            (Failed, Pending, false),
            (Failed, Failed, false),
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
