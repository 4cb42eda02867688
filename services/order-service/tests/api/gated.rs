//! A store that holds back one operation at a gate: the test learns when
//! a flow got there, and says when it goes on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use common::domain::OrderId;
use order_service::Config;
use order_service::domain::{Order, OrderStatus};
use order_service::store::{MemoryStore, OrderStore, PendingOrder, StoreError, Updated};
use tokio::sync::{Notify, Semaphore};

use crate::helpers::memory_store;

/// Which store operation a [`GatedStore`] holds back.
#[derive(Clone, Copy, Debug)]
pub enum Gate {
    Insert,
    Update,
}

/// The memory store, but the first `insert` or `update` (as chosen; claims
/// pass) waits at a gate: the test learns when a flow got there and says when it goes on.
pub struct GatedStore {
    inner: MemoryStore,
    gate: Gate,
    armed: AtomicBool,
    pub reached: Notify,
    open: Semaphore,
}

impl GatedStore {
    /// Over the memory store `config` would open.
    pub fn new(gate: Gate, config: &Config) -> Arc<Self> {
        Self::with_room(gate, memory_store(config))
    }

    /// Over `inner` (a store of some size).
    pub fn with_room(gate: Gate, inner: MemoryStore) -> Arc<Self> {
        Arc::new(Self {
            inner,
            gate,
            armed: AtomicBool::new(true),
            reached: Notify::new(),
            open: Semaphore::new(0),
        })
    }

    async fn pass(&self, gate: Gate) {
        let mine = matches!(
            (gate, self.gate),
            (Gate::Insert, Gate::Insert) | (Gate::Update, Gate::Update)
        );
        if mine && self.armed.swap(false, Ordering::SeqCst) {
            self.reached.notify_one();
            self.open.acquire().await.expect("gate open").forget();
        }
    }

    pub fn open(&self) {
        self.open.add_permits(1);
    }
}

#[async_trait]
impl OrderStore for GatedStore {
    async fn insert(&self, order: Order) -> Result<(), StoreError> {
        self.pass(Gate::Insert).await;
        self.inner.insert(order).await
    }

    async fn update(&self, order: Order, from: OrderStatus) -> Result<Updated, StoreError> {
        self.pass(Gate::Update).await;
        self.inner.update(order, from).await
    }

    async fn claim(&self, order: Order, from: OrderStatus) -> Result<Updated, StoreError> {
        self.inner.claim(order, from).await
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.inner.get(id).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn claim_due(&self, n: usize) -> Result<Vec<(PendingOrder, u32)>, StoreError> {
        self.inner.claim_due(n).await
    }

    async fn pending(&self) -> Result<usize, StoreError> {
        self.inner.pending().await
    }
}
