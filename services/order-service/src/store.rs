//! Where orders live. A trait, because the in-memory default forgets
//! everything on restart and a shared store (PostgreSQL) implements the
//! same operations.
//!
//! An order's status only moves forward: `update` is a compare-and-set on
//! the status its writer read, so two writers working from copies of one
//! order (a client's retry and the reconciler) cannot undo each other, and
//! a `completed` order is final. A shared store keeps the same rule
//! (`UPDATE … WHERE status = $from`).

mod memory;

use async_trait::async_trait;
use common::domain::OrderId;

pub use memory::MemoryStore;

use crate::domain::{Order, OrderStatus};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("order {0} already exists")]
    Duplicate(OrderId),
    #[error("order {0} does not exist")]
    Missing(OrderId),
    #[error("order store unavailable: {0}")]
    Unavailable(String),
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
}
