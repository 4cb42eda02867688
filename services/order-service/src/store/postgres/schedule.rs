//! The reconciler's schedule in the shared store: every `pending` order is
//! a row with a due time, claimed by one replica at a time.

use actors::reconciler::{Claims, Local};
use common::domain::OrderId;
use observability::TraceLink;

use super::{PgStore, millis};
use crate::store::{PendingOrder, StoreError};

impl PgStore {
    /// Claims at most `n` due pending orders for this replica until the
    /// claim's lease (the longest call) ends; answers each with its attempt
    /// number and the trace that created it.
    pub async fn claim_due(
        &self,
        n: usize,
    ) -> Result<Vec<(OrderId, u32, Option<String>)>, StoreError> {
        let (limit, hold, replica) = (n as i64, millis(self.settings().hold), self.inner.replica);
        let rows = self
            .query(
                "UPDATE orders SET due_at = now() + $2 * interval '1 millisecond',
                                       attempts = attempts + 1, claimed_by = $3
                     WHERE order_id IN (
                         SELECT order_id FROM orders
                         WHERE status = 'pending' AND due_at <= now()
                         ORDER BY due_at LIMIT $1
                         FOR UPDATE SKIP LOCKED)
                     RETURNING order_id, attempts, trace",
                &[&limit, &hold, &replica],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                let attempts: i32 = row.get(1);
                (
                    OrderId::from_uuid(row.get(0)),
                    attempts.max(1) as u32,
                    row.get(2),
                )
            })
            .collect())
    }

    /// Pending orders in the whole table.
    pub async fn pending(&self) -> Result<usize, StoreError> {
        let rows = self
            .query("SELECT count(*) FROM orders WHERE status = 'pending'", &[])
            .await?;
        Ok(rows[0].get::<_, i64>(0) as usize)
    }
}

/// The reconciler's work with the shared store: due `pending` rows, claimed
/// under a lease, linking to the trace that created each order.
pub struct TableClaims(pub PgStore);

impl Claims<PendingOrder> for TableClaims {
    fn claim(&self, n: usize) -> Local<Vec<(PendingOrder, u32)>> {
        let store = self.0.clone();
        Box::pin(async move {
            match store.claim_due(n).await {
                Ok(claimed) => claimed
                    .into_iter()
                    .map(|(order_id, attempt, trace)| {
                        let link = TraceLink::from_traceparent(trace.as_deref().unwrap_or(""));
                        (PendingOrder { order_id, link }, attempt)
                    })
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "claiming due orders failed; next tick");
                    Vec::new()
                }
            }
        })
    }

    fn pending(&self) -> Local<Option<usize>> {
        let store = self.0.clone();
        Box::pin(async move { store.pending().await.ok() })
    }
}
