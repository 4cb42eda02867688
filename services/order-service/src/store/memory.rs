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
//!
//! The store is also the reconciler's schedule, as the table is for
//! PostgreSQL: each pending order has a due time, written with the order
//! under the same lock, so no flow has to tell the reconciler anything and
//! an order whose flow died still falls due.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actors::clock::{SharedClock, SystemClock};
use async_trait::async_trait;
use common::domain::OrderId;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use observability::TraceLink;

use super::{OrderStore, PendingOrder, Redrives, StoreError, Updated};
use crate::domain::{Order, OrderStatus};

pub struct MemoryStore {
    orders: DashMap<OrderId, Box<Order>>,
    room: Mutex<Room>,
    max_orders: usize,
    redrives: Redrives,
    clock: SharedClock,
}

/// What eviction and the schedule need, under one lock taken before any
/// shard's (never while holding one).
#[derive(Default)]
struct Room {
    /// Orders held.
    held: usize,
    /// Orders in the order they settled, each time they settled: an entry
    /// whose order has gone, or is pending again, is skipped when reached.
    settled: VecDeque<OrderId>,
    /// The reconciler's schedule: every pending order and when it falls due.
    schedule: Schedule,
}

/// Pending orders by id, and by due time: a claim takes the earliest due
/// without looking at the others, however many are pending (all of them,
/// after an outage), so that it holds the lock only briefly.
#[derive(Default)]
struct Schedule {
    due: HashMap<OrderId, Due>,
    by_time: BTreeSet<(Instant, OrderId)>,
}

struct Due {
    at: Instant,
    /// Re-drives claimed so far.
    attempts: u32,
    /// The request that left the order pending.
    link: TraceLink,
}

const SHARDS: usize = 128;

impl MemoryStore {
    pub fn new(max_orders: usize, redrives: Redrives) -> Self {
        Self::with_clock(max_orders, redrives, Arc::new(SystemClock))
    }

    pub fn with_clock(max_orders: usize, redrives: Redrives, clock: SharedClock) -> Self {
        Self {
            orders: DashMap::with_shard_amount(SHARDS),
            room: Mutex::default(),
            max_orders: max_orders.max(1),
            redrives,
            clock,
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
    /// goes down. The order's place in the schedule moves with it.
    fn write_if(
        &self,
        order: Order,
        allowed: impl FnOnce(&Order, &Order) -> bool,
    ) -> Result<Updated, StoreError> {
        let (id, status) = (order.order_id, order.status);
        let mut room = self.room();
        match self.orders.get_mut(&id).as_deref_mut() {
            Some(slot) if allowed(slot, &order) => {
                let calls = slot.calls.max(order.calls);
                **slot = Order { calls, ..order };
            }
            Some(slot) => return Ok(Updated::Stale((**slot).clone())),
            None => return Err(StoreError::Missing(id)),
        }
        if status == OrderStatus::Pending {
            let now = self.clock.now();
            room.schedule.after_write(id, now, &self.redrives);
        } else {
            room.schedule.remove(id);
            room.settled.push_back(id);
        }
        Ok(Updated::Written)
    }
}

impl Schedule {
    /// A new pending order, first due `at`, linked to the request's trace.
    fn add(&mut self, id: OrderId, at: Instant, link: TraceLink) {
        self.due.insert(
            id,
            Due {
                at,
                attempts: 0,
                link,
            },
        );
        self.by_time.insert((at, id));
    }

    /// Written pending again: due after the longest call, backing off.
    fn after_write(&mut self, id: OrderId, now: Instant, redrives: &Redrives) {
        match self.due.get(&id) {
            Some(due) => {
                let at = now + redrives.backoff(due.attempts);
                self.move_to(id, at, 0);
            }
            // Never without an entry (pending orders are inserted pending
            // and never come back from settled); were it so, it is now.
            None => self.add(id, now + redrives.backoff(0), TraceLink::current()),
        }
    }

    fn remove(&mut self, id: OrderId) {
        if let Some(due) = self.due.remove(&id) {
            self.by_time.remove(&(due.at, id));
        }
    }

    /// Moves `id` to `at`, counting `attempts` more re-drives.
    fn move_to(&mut self, id: OrderId, at: Instant, attempts: u32) -> Option<&Due> {
        let due = self.due.get_mut(&id)?;
        self.by_time.remove(&(due.at, id));
        due.at = at;
        due.attempts += attempts;
        self.by_time.insert((at, id));
        Some(due)
    }

    /// The earliest `n` due by `now`, each leased until `lease_end`.
    fn claim(&mut self, n: usize, now: Instant, lease_end: Instant) -> Vec<(PendingOrder, u32)> {
        let due: Vec<OrderId> = (self.by_time.iter())
            .take_while(|(at, _)| *at <= now)
            .take(n)
            .map(|(_, id)| *id)
            .collect();
        due.into_iter()
            .filter_map(|order_id| {
                let due = self.move_to(order_id, lease_end, 1)?;
                let link = due.link.clone();
                Some((PendingOrder { order_id, link }, due.attempts))
            })
            .collect()
    }
}

#[async_trait]
impl OrderStore for MemoryStore {
    async fn insert(&self, order: Order) -> Result<(), StoreError> {
        // The trace is read before the lock every write of every worker
        // takes, not under it.
        let link = (order.status == OrderStatus::Pending).then(TraceLink::current);
        let mut room = self.room();
        if room.held >= self.max_orders && !self.evict_one(&mut room) {
            return Err(StoreError::Full);
        }
        let id = order.order_id;
        match self.orders.entry(id) {
            Entry::Occupied(_) => return Err(StoreError::Duplicate(id)),
            Entry::Vacant(slot) => slot.insert(Box::new(order)),
        };
        room.held += 1;
        match link {
            Some(link) => room
                .schedule
                .add(id, self.clock.now() + self.redrives.hold, link),
            None => room.settled.push_back(id),
        }
        Ok(())
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

    /// The earliest due first; each claimed is due again when its lease
    /// (the longest call) ends, unless a write moves it first.
    async fn claim_due(&self, n: usize) -> Result<Vec<(PendingOrder, u32)>, StoreError> {
        let now = self.clock.now();
        let claimed = self.room().schedule.claim(n, now, now + self.redrives.hold);
        Ok(claimed)
    }

    async fn pending(&self) -> Result<usize, StoreError> {
        Ok(self.room().schedule.due.len())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use actors::clock::ManualClock;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    /// Due one hold after a write, then backing off 1, 2, 4… s, to 8 s.
    const REDRIVES: Redrives = Redrives {
        hold: Duration::from_secs(3),
        interval: SECOND,
        max_backoff: Duration::from_secs(8),
    };

    fn store(max_orders: usize) -> MemoryStore {
        MemoryStore::new(max_orders, REDRIVES)
    }

    fn scheduled(clock: &ManualClock) -> MemoryStore {
        MemoryStore::with_clock(10, REDRIVES, Arc::new(clock.clone()))
    }

    async fn claimed(store: &MemoryStore, n: usize) -> Vec<(OrderId, u32)> {
        let claimed = store.claim_due(n).await.unwrap();
        claimed.into_iter().map(|(p, a)| (p.order_id, a)).collect()
    }

    #[actix_rt::test]
    async fn a_pending_order_falls_due_after_the_hold_and_again_after_each_lease() {
        let clock = ManualClock::default();
        let store = scheduled(&clock);
        let order = pending();
        store.insert(order.clone()).await.unwrap();
        assert_eq!(store.pending().await.unwrap(), 1);
        clock.advance(2 * SECOND);
        assert!(
            claimed(&store, 4).await.is_empty(),
            "its flow may still call"
        );
        clock.advance(SECOND);
        assert_eq!(claimed(&store, 4).await, [(order.order_id, 1)]);
        assert!(claimed(&store, 4).await.is_empty(), "claimed: leased");
        // A re-drive that never reports: due again when the lease ends.
        clock.advance(3 * SECOND);
        assert_eq!(claimed(&store, 4).await, [(order.order_id, 2)]);
    }

    #[actix_rt::test]
    async fn a_write_that_leaves_it_pending_backs_off_and_a_settled_one_leaves_the_schedule() {
        let clock = ManualClock::default();
        let store = scheduled(&clock);
        let order = pending();
        store.insert(order.clone()).await.unwrap();
        for attempt in 1..=3 {
            clock.advance(8 * SECOND);
            assert_eq!(claimed(&store, 1).await, [(order.order_id, attempt)]);
        }
        // Three re-drives in: 8 s, past the hold (min(1 s × 2³, 8 s)).
        store
            .update(order.clone(), OrderStatus::Pending)
            .await
            .unwrap();
        clock.advance(7 * SECOND);
        assert!(claimed(&store, 1).await.is_empty());
        clock.advance(SECOND);
        assert_eq!(claimed(&store, 1).await.len(), 1);
        let done = with(&order, OrderStatus::Completed);
        store.update(done, OrderStatus::Pending).await.unwrap();
        assert_eq!(store.pending().await.unwrap(), 0);
        clock.advance(60 * SECOND);
        assert!(claimed(&store, 1).await.is_empty(), "settled: never due");
    }

    #[actix_rt::test]
    async fn the_earliest_due_are_claimed_first_and_no_more_than_asked() {
        let clock = ManualClock::default();
        let store = scheduled(&clock);
        let orders: Vec<Order> = (0..3).map(|_| pending()).collect();
        for order in &orders {
            store.insert(order.clone()).await.unwrap();
            clock.advance(SECOND);
        }
        clock.advance(2 * SECOND);
        let first = claimed(&store, 2).await;
        assert_eq!(first, [(orders[0].order_id, 1), (orders[1].order_id, 1)]);
        assert_eq!(claimed(&store, 2).await, [(orders[2].order_id, 1)]);
    }

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
        let store = store(101);
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
        let store = store(3);
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
        let store = store(1_000);
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
        let store = store(1_000);
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
            let store = store(1_000);
            let order = with(&pending(), from);
            store.insert(order.clone()).await.unwrap();
            let written = store.update(with(&order, to), from).await.unwrap();
            assert_eq!(written == Updated::Written, allowed, "{from:?} → {to:?}");
        }
    }

    #[actix_rt::test]
    async fn a_refusal_cannot_fail_an_order_another_flow_has_taken_into_a_call() {
        let store = store(1_000);
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
        let store = store(1_000);
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
        let store = store(1_000);
        let missing = store.update(pending(), OrderStatus::Pending).await;
        assert!(matches!(missing, Err(StoreError::Missing(_))));
    }
}
