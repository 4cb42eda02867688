//! The default store: a map in this process. Fast and simple; an
//! order-service restart forgets every order (see the README's limits).

use std::collections::HashMap;
use std::sync::RwLock;

use async_trait::async_trait;
use common::domain::OrderId;

use super::{OrderStore, StoreError};
use crate::domain::Order;

#[derive(Default)]
pub struct MemoryStore {
    orders: RwLock<HashMap<OrderId, Order>>,
}

#[async_trait]
impl OrderStore for MemoryStore {
    async fn insert(&self, order: Order) -> Result<(), StoreError> {
        let mut orders = self.orders.write().unwrap_or_else(|e| e.into_inner());
        if orders.contains_key(&order.order_id) {
            return Err(StoreError::Duplicate(order.order_id));
        }
        orders.insert(order.order_id, order);
        Ok(())
    }

    async fn update(&self, order: Order) -> Result<(), StoreError> {
        let mut orders = self.orders.write().unwrap_or_else(|e| e.into_inner());
        match orders.get_mut(&order.order_id) {
            Some(slot) => {
                *slot = order;
                Ok(())
            }
            None => Err(StoreError::Missing(order.order_id)),
        }
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let orders = self.orders.read().unwrap_or_else(|e| e.into_inner());
        Ok(orders.get(&id).cloned())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
