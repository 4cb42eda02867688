//! Where orders live. A trait, because the in-memory default forgets
//! everything on restart and a shared store (Redis, PostgreSQL) will
//! implement the same four operations.

mod memory;

use async_trait::async_trait;
use common::domain::OrderId;

pub use memory::MemoryStore;

use crate::domain::Order;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("order {0} already exists")]
    Duplicate(OrderId),
    #[error("order {0} does not exist")]
    Missing(OrderId),
    #[error("order store unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait OrderStore: Send + Sync + 'static {
    /// Records a new order; refuses an id that exists.
    async fn insert(&self, order: Order) -> Result<(), StoreError>;
    /// Replaces an existing order (its status changed).
    async fn update(&self, order: Order) -> Result<(), StoreError>;
    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError>;
    /// Whether the store can be reached (`/ready`).
    async fn ping(&self) -> Result<(), StoreError>;
}
