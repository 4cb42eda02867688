//! The reconciler's schedule in the shared store: every `pending` order is
//! a row with a due time, claimed by one replica at a time.

use common::domain::OrderId;
use observability::TraceLink;

use super::{PgStore, millis};
use crate::store::{PendingOrder, StoreError};

impl PgStore {
    /// Claims at most `n` due pending orders for this replica until the
    /// claim's lease (the longest call) ends; answers each with its attempt
    /// number and the trace that created it.
    pub(super) async fn claim_due_rows(
        &self,
        n: usize,
    ) -> Result<Vec<(PendingOrder, u32)>, StoreError> {
        let (limit, hold) = (n as i64, millis(self.inner.redrives.hold));
        let replica = self.inner.replica;
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
                let trace: Option<&str> = row.get(2);
                let pending = PendingOrder {
                    order_id: OrderId::from_uuid(row.get(0)),
                    link: TraceLink::from_traceparent(trace.unwrap_or("")),
                };
                (pending, attempts.max(1) as u32)
            })
            .collect())
    }

    /// Pending orders in the whole table.
    pub(super) async fn pending_rows(&self) -> Result<usize, StoreError> {
        let rows = self
            .query("SELECT count(*) FROM orders WHERE status = 'pending'", &[])
            .await?;
        Ok(rows[0].get::<_, i64>(0) as usize)
    }
}
