//! Where orders live. A trait, because the in-memory default forgets
//! everything on restart and a shared store (PostgreSQL) implements the
//! same operations.
//!
//! An order's status only moves forward: `update` is a compare-and-set on
//! the status its writer read, so two writers working from copies of one
//! order (a client's retry and the reconciler) cannot undo each other, and
//! a `completed` order is final. The shared store keeps the same rule
//! (`UPDATE … WHERE status = $from`).
//!
//! The idempotency keys live with the orders ([`Storage::keys`]): a key is
//! reserved together with its `pending` order and completed together with
//! the order's outcome, in one transaction where the store has them.
//!
//! The store is also the reconciler's schedule ([`Storage::claims`]): a
//! pending order falls due by one rule ([`Redrives`]) in both stores, and
//! the reconciler claims what is due under a lease. Nothing has to tell it
//! of an order, so no order flow sends it a message.

mod keys;
mod memory;
mod postgres;

use std::sync::Arc;
use std::time::Duration;

use actors::clock::SharedClock;
use actors::idempotency::{Effect, IdempotencyConfig, KeyBackend, KeyStoreError};
use actors::reconciler::{Claims, Local};
use async_trait::async_trait;
use common::domain::OrderId;
use observability::TraceLink;

pub use keys::InProcessKeys;
pub use memory::MemoryStore;
pub use postgres::{PgSettings, PgStore};

use crate::domain::{Order, OrderStatus};

/// Where orders and keys live: in this process (the default; a restart
/// forgets them), or in PostgreSQL, shared by every replica.
#[derive(Clone)]
pub enum Storage {
    InProcess(Arc<dyn OrderStore>),
    Shared(PgStore),
}

/// The key backend the idempotency actor runs on.
pub type OrderKeys = Box<dyn KeyBackend<Id = OrderId, Record = Order, Effect = Settle>>;

/// What the store is opened with (the Database settings).
#[derive(Debug, Clone)]
pub struct StorageSettings {
    /// Shared in PostgreSQL; none: in this process.
    pub database_url: Option<String>,
    /// In this process: orders kept, at most.
    pub orders_max: usize,
    pub redrives: Redrives,
    pub pg: PgSettings,
}

/// When a pending order falls due for the reconciler, in either store.
#[derive(Debug, Clone, Copy)]
pub struct Redrives {
    /// A new pending order is first due this long after it is written,
    /// and a claim lasts as long: the longest payment call.
    pub hold: Duration,
    /// The first backoff, doubled per re-drive, up to the max.
    pub interval: Duration,
    pub max_backoff: Duration,
}

impl Redrives {
    /// How long after a write that leaves it pending an order falls due,
    /// `attempts` re-drives in: after the longest call, backing off.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let backoff = self.interval.saturating_mul(1 << attempts.min(16));
        self.hold.max(backoff.min(self.max_backoff))
    }
}

/// An order whose payment outcome may be unknown, as the reconciler holds
/// it.
#[derive(Debug, Clone)]
pub struct PendingOrder {
    pub order_id: OrderId,
    /// The request that left it pending.
    pub link: TraceLink,
}

impl Storage {
    /// The store the settings name; PostgreSQL connects lazily (a database
    /// that is down now makes the service unready, not unable to start).
    pub fn open(settings: StorageSettings) -> Result<Self, StoreError> {
        Ok(match &settings.database_url {
            None => Self::InProcess(Arc::new(MemoryStore::new(
                settings.orders_max,
                settings.redrives,
            ))),
            Some(url) => Self::Shared(PgStore::new(url, settings.pg, settings.redrives)?),
        })
    }

    /// Call inside the runtime: the schema migrated now if the database
    /// answers, else on first use.
    pub fn start(&self) {
        if let Self::Shared(pg) = self {
            pg.start_migrating();
        }
    }

    /// Where the reconciler finds pending orders: claimed from the store.
    pub fn claims(&self) -> Box<dyn Claims<PendingOrder>> {
        Box::new(StoreClaims(self.orders()))
    }

    pub fn orders(&self) -> Arc<dyn OrderStore> {
        match self {
            Self::InProcess(orders) => orders.clone(),
            Self::Shared(pg) => Arc::new(pg.clone()),
        }
    }

    pub fn keys(&self, config: IdempotencyConfig, clock: SharedClock) -> OrderKeys {
        match self {
            Self::InProcess(orders) => Box::new(InProcessKeys::new(config, clock, orders.clone())),
            Self::Shared(pg) => Box::new(pg.clone()),
        }
    }
}

impl From<Arc<dyn OrderStore>> for Storage {
    fn from(orders: Arc<dyn OrderStore>) -> Self {
        Self::InProcess(orders)
    }
}

/// What completing a key writes to its order.
#[derive(Debug)]
pub enum Settle {
    /// The outcome, as `update(order, from)` would write it.
    Order { order: Order, from: OrderStatus },
    /// Nothing: the order already stands as the answer says.
    AsItStands,
}

/// A refused outcome answers the order as it stands.
impl Effect for Settle {
    type Refused = Order;
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("order {0} already exists")]
    Duplicate(OrderId),
    #[error("order {0} does not exist")]
    Missing(OrderId),
    /// The in-memory store holds `ORDERS_MAX` orders and none of the
    /// oldest can be forgotten (they are pending).
    #[error("order store full")]
    Full,
    /// Down or refusing: nothing was written. The cause is for logs,
    /// never for clients.
    #[error("order store unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// No answer, or none in time, to a write the store may have made, or
    /// may still make later (a statement given up on can commit after):
    /// whoever asked must not assume either way.
    #[error("order store did not answer: {0}")]
    Uncertain(#[source] Cause),
}

/// What the driver (or the key store under it) said, kept whole.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

impl StoreError {
    /// Whether the write may have been made although it failed.
    pub fn may_have_written(&self) -> bool {
        matches!(self, Self::Uncertain(_))
    }
}

/// The key backends answer the store's failures, keeping whether the
/// write may have been made, and the failure itself.
impl From<StoreError> for KeyStoreError {
    fn from(e: StoreError) -> Self {
        match e.may_have_written() {
            true => Self::Uncertain(Arc::new(e)),
            false => Self::Unavailable(Arc::new(e)),
        }
    }
}

/// And back: what the key store said, whether it may have written.
impl From<KeyStoreError> for StoreError {
    fn from(e: KeyStoreError) -> Self {
        match e.may_have_happened() {
            true => Self::Uncertain(Box::new(e)),
            false => Self::Unavailable(Box::new(e)),
        }
    }
}

/// What a compare-and-set `update` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Updated {
    /// The order was written.
    Written,
    /// Another writer moved the order first (or the move is not allowed):
    /// nothing was written; this is the order as it stands.
    Stale(Order),
}

#[async_trait]
pub trait OrderStore: Send + Sync + 'static {
    /// Records a new order; refuses an id that exists.
    async fn insert(&self, order: Order) -> Result<(), StoreError>;
    /// Replaces the stored order with `order` if its status is still `from`
    /// and `from → order.status` is a move [`OrderStatus::may_become`]
    /// allows — except a `failed` from a writer whose `calls` is behind the
    /// stored count: another flow has taken the order into a call since, so
    /// "my call never reached payment" no longer proves nothing was charged.
    /// The stored `calls` never goes down.
    async fn update(&self, order: Order, from: OrderStatus) -> Result<Updated, StoreError>;
    /// Takes the order into a new call: like `update`, and only if the
    /// stored count of calls is still `order.calls - 1` (the count the
    /// claimer read), so that no two flows hold the same count.
    async fn claim(&self, order: Order, from: OrderStatus) -> Result<Updated, StoreError>;
    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError>;
    /// Whether the store can be reached (`/ready`).
    async fn ping(&self) -> Result<(), StoreError>;
    /// Claims at most `n` due pending orders for this process until the
    /// claim's lease (the longest call) ends, each with its attempt number
    /// (from 1) and the trace that left it pending.
    async fn claim_due(&self, n: usize) -> Result<Vec<(PendingOrder, u32)>, StoreError>;
    /// Pending orders in the whole store.
    async fn pending(&self) -> Result<usize, StoreError>;
}

/// The reconciler's work, claimed from the store: every pending order is
/// scheduled there, by whichever flow wrote it.
struct StoreClaims(Arc<dyn OrderStore>);

impl Claims<PendingOrder> for StoreClaims {
    fn claim(&self, n: usize) -> Local<Vec<(PendingOrder, u32)>> {
        let store = self.0.clone();
        Box::pin(async move {
            store.claim_due(n).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "claiming due orders failed; next tick");
                Vec::new()
            })
        })
    }

    fn pending(&self) -> Local<Option<usize>> {
        let store = self.0.clone();
        Box::pin(async move { store.pending().await.ok() })
    }
}
