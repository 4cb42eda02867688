//! Orders in the shared store: written new, moved by compare-and-set, read.

use async_trait::async_trait;
use common::domain::{Amount, Currency, MerchantId, OrderId};
use tokio_postgres::Row;

use super::PgStore;
use super::batch;
use super::writes::{KeyAnswer, NewOrder, Outcome};
use crate::domain::{Order, OrderStatus};
use crate::store::{OrderStore, PendingOrder, StoreError, Updated};

impl PgStore {
    /// Records `trace` (a traceparent) as the order's origin.
    pub(super) async fn insert_order(
        &self,
        order: Order,
        trace: Option<String>,
    ) -> Result<(), StoreError> {
        let id = order.order_id;
        let write = NewOrder {
            order,
            trace,
            key: None,
        };
        match batch::write(self, write).await? {
            true => Ok(()),
            false => Err(StoreError::Duplicate(id)),
        }
    }

    /// The compare-and-set under `update` and `claim`, and under a key's
    /// completion (`key`): if the move is one an order may make; else, or
    /// when the compare-and-set failed, answers the order as it stands.
    pub(super) async fn write_outcome(
        &self,
        order: Order,
        from: OrderStatus,
        claiming: bool,
        key: Option<KeyAnswer>,
    ) -> Result<Updated, StoreError> {
        let id = order.order_id;
        if from.may_become(order.status) {
            let write = Outcome {
                order,
                from,
                claiming,
                key,
            };
            if batch::write(self, write).await? {
                return Ok(Updated::Written);
            }
        }
        match self.get(id).await? {
            Some(current) => Ok(Updated::Stale(current)),
            None => Err(StoreError::Missing(id)),
        }
    }
}

fn order_from(row: &Row) -> Result<Order, StoreError> {
    let corrupt = |what: &str| super::unavailable(format!("stored order has a bad {what}"));
    let status: &str = row.get("status");
    Ok(Order {
        order_id: OrderId::from_uuid(row.get("order_id")),
        status: OrderStatus::parse(status).ok_or_else(|| corrupt("status"))?,
        merchant_id: MerchantId::parse(row.get("merchant_id")).map_err(|_| corrupt("merchant"))?,
        amount: Amount::from_decimal(row.get("amount")).map_err(|_| corrupt("amount"))?,
        currency: Currency::parse(row.get("currency")).map_err(|_| corrupt("currency"))?,
        transaction_id: row.get("transaction_id"),
        reason: row.get("reason"),
        created_at: row.get("created_at"),
        maybe_charged: row.get("maybe_charged"),
        calls: row.get::<_, i32>("calls") as u32,
    })
}

#[async_trait]
impl OrderStore for PgStore {
    async fn insert(&self, order: Order) -> Result<(), StoreError> {
        self.insert_order(order, observability::TraceLink::current().to_traceparent())
            .await
    }

    async fn update(&self, order: Order, from: OrderStatus) -> Result<Updated, StoreError> {
        self.write_outcome(order, from, false, None).await
    }

    async fn claim(&self, order: Order, from: OrderStatus) -> Result<Updated, StoreError> {
        self.write_outcome(order, from, true, None).await
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let rows = self
            .query(
                "SELECT order_id, status, merchant_id, amount, currency, transaction_id,
                            reason, created_at, maybe_charged, calls
                     FROM orders WHERE order_id = $1",
                &[&id.as_uuid()],
            )
            .await?;
        rows.first().map(order_from).transpose()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.query("SELECT 1", &[]).await.map(drop)
    }

    async fn claim_due(&self, n: usize) -> Result<Vec<(PendingOrder, u32)>, StoreError> {
        self.claim_due_rows(n).await
    }

    async fn pending(&self) -> Result<usize, StoreError> {
        self.pending_rows().await
    }
}
