//! The order and the request that creates one.

pub mod new_order;
mod order;

pub use new_order::NewOrder;
pub use order::{Order, OrderStatus};
