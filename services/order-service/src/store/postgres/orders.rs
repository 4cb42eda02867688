//! Orders in the shared store: written new, moved by compare-and-set, read.

use async_trait::async_trait;
use common::domain::{Amount, Currency, MerchantId, OrderId};
use tokio_postgres::Row;
use uuid::Uuid;

use super::{Param, PgStore};
use crate::domain::{Order, OrderStatus};
use crate::store::{OrderStore, PendingOrder, StoreError, Updated};

/// An order as bind parameters: the values its columns hold.
pub(super) struct Bound<'a> {
    order: &'a Order,
    id: Uuid,
    status: &'static str,
    merchant: &'a str,
    amount: rust_decimal::Decimal,
    currency: &'static str,
    calls: i32,
}

impl<'a> Bound<'a> {
    pub(super) fn new(order: &'a Order) -> Self {
        Self {
            order,
            id: order.order_id.as_uuid(),
            status: order.status.as_str(),
            merchant: order.merchant_id.as_str(),
            amount: order.amount.value(),
            currency: order.currency.code(),
            calls: order.calls as i32,
        }
    }

    /// `$1`–`$9` of [`insert_pending!`].
    pub(super) fn columns(&self) -> [Param<'_>; 9] {
        let o = self.order;
        [
            &self.status,
            &self.merchant,
            &self.amount,
            &self.currency,
            &o.transaction_id,
            &o.reason,
            &o.created_at,
            &o.maybe_charged,
            &self.calls,
        ]
    }

    /// `$1`–`$6` of [`set_outcome!`].
    pub(super) fn outcome(&self) -> [Param<'_>; 6] {
        let o = self.order;
        [
            &self.id,
            &self.status,
            &o.transaction_id,
            &o.reason,
            &o.maybe_charged,
            &self.calls,
        ]
    }
}

impl PgStore {
    /// Records `trace` (a traceparent) as the order's origin.
    pub(super) async fn insert_order(
        &self,
        order: &Order,
        trace: Option<String>,
    ) -> Result<(), StoreError> {
        let [hold, ..] = self.due_params();
        let row = Bound::new(order);
        let inserted = self
            .query(
                concat!(
                    "WITH new AS (SELECT $12::uuid AS order_id) ",
                    insert_pending!("new"),
                    " ON CONFLICT (order_id) DO NOTHING RETURNING order_id"
                ),
                &[&row.columns()[..], &[&hold, &trace, &row.id]].concat(),
            )
            .await?;
        if inserted.is_empty() {
            return Err(StoreError::Duplicate(order.order_id));
        }
        Ok(())
    }

    /// The compare-and-set under `update` and `claim`: `claim` also
    /// requires the stored count of calls to be the one the claimer read.
    pub(super) async fn write_if(
        &self,
        order: Order,
        from: OrderStatus,
        claiming: bool,
    ) -> Result<Updated, StoreError> {
        let sql = concat!(
            set_outcome!(),
            " AND (NOT $11 OR calls = $6 - 1) RETURNING true"
        );
        self.write_outcome(&order, from, sql, &[&claiming]).await
    }

    /// Runs `sql`, a statement around [`set_outcome!`] whose first column
    /// says whether the order was written (`extra` binds `$11` on), if the
    /// move is one an order may make; else, or when the compare-and-set
    /// failed, answers the order as it stands.
    pub(super) async fn write_outcome(
        &self,
        order: &Order,
        from: OrderStatus,
        sql: &'static str,
        extra: &[Param<'_>],
    ) -> Result<Updated, StoreError> {
        if from.may_become(order.status) {
            let [hold, interval, max] = self.due_params();
            let (row, from) = (Bound::new(order), from.as_str());
            let due: [Param; 4] = [&from, &hold, &interval, &max];
            let written = self
                .query(sql, &[&row.outcome()[..], &due, extra].concat())
                .await?;
            if written.first().is_some_and(|row| row.get::<_, bool>(0)) {
                return Ok(Updated::Written);
            }
        }
        match self.get(order.order_id).await? {
            Some(current) => Ok(Updated::Stale(current)),
            None => Err(StoreError::Missing(order.order_id)),
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
        self.insert_order(&order, observability::TraceLink::current().to_traceparent())
            .await
    }

    async fn update(&self, order: Order, from: OrderStatus) -> Result<Updated, StoreError> {
        self.write_if(order, from, false).await
    }

    async fn claim(&self, order: Order, from: OrderStatus) -> Result<Updated, StoreError> {
        self.write_if(order, from, true).await
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
