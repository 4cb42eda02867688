//! Idempotency keys in the shared store, beside their orders: a
//! reservation writes its `pending` order, and a completion its outcome,
//! in the same statement.

use std::sync::Arc;

use actors::idempotency::{
    Answer, Complete, Completion, KeyBackend, KeyStoreError, Release, Reservation, Reserve, Stats,
    StoredResponse,
};
use common::domain::OrderId;
use tokio_postgres::Row;

use super::batch;
use super::writes::{KeyAnswer, NewKey, NewOrder};
use super::{PgStore, millis, unavailable};
use crate::domain::Order;
use crate::store::{Settle, StoreError, Updated};

/// Rows deleted per statement by the TTL sweep.
const SWEEP_BATCH: i64 = 1_000;

impl PgStore {
    async fn reserve_key(
        &self,
        msg: Reserve<Order, OrderId>,
        trace: Option<String>,
    ) -> Result<Reservation<OrderId>, StoreError> {
        let s = self.settings();
        let (lease, ttl) = (millis(s.key_lease), s.key_ttl.as_secs_f64());
        let holder = msg.holder.as_uuid();
        // The key and its order are one row each under one id: the
        // record is the candidate's order.
        debug_assert_eq!(msg.record.order_id, msg.order_id);
        let new = NewOrder {
            order: msg.record,
            trace,
            key: Some(NewKey {
                key: msg.key.clone(),
                fingerprint: msg.fingerprint.clone(),
                holder,
            }),
        };
        // A key swept between two statements is simply new again.
        for _ in 0..3 {
            if batch::write(self, new.clone()).await? {
                return Ok(Reservation::New);
            }
            // Taken before: resume it if it is free (released, or its
            // holder silent past the lease) and the body is the same.
            let resumed = self
                .query(
                    // A key in use again is remembered a TTL from now.
                    "UPDATE idempotency_keys
                         SET holder = $2, lease_until = now() + $3 * interval '1 millisecond',
                             expires_at = GREATEST(expires_at, now() + $5 * interval '1 second')
                         WHERE key = $1 AND fingerprint = $4 AND response_status IS NULL
                           AND (holder IS NULL OR lease_until <= now())
                         RETURNING order_id",
                    &[&msg.key, &holder, &lease, &msg.fingerprint, &ttl],
                )
                .await?;
            if let Some(row) = resumed.first() {
                return Ok(Reservation::Resume {
                    order_id: OrderId::from_uuid(row.get(0)),
                });
            }
            let found = self
                .query(
                    "SELECT fingerprint, response_status, response_headers, response_body,
                            order_id
                         FROM idempotency_keys WHERE key = $1",
                    &[&msg.key],
                )
                .await?;
            if let Some(row) = found.first() {
                return taken(row, &msg.fingerprint);
            }
        }
        Err(unavailable("the key kept changing under its reservation"))
    }

    /// Completes the key with its response, writing the order's outcome
    /// in the same statement when there is one: the key is completed only
    /// if the outcome is written.
    async fn complete_key(&self, msg: Complete<Settle>) -> Result<Completion<Settle>, StoreError> {
        let headers = serde_json::to_value(&msg.response.headers).map_err(unavailable)?;
        let status = msg.response.status as i16;
        let holder = msg.holder.as_uuid();
        let Settle::Order { order, from } = msg.effect else {
            self.query(
                "UPDATE idempotency_keys SET holder = NULL, lease_until = NULL,
                         response_status = $3, response_headers = $4, response_body = $5
                     WHERE key = $1 AND holder = $2
                     RETURNING key",
                &[&msg.key, &holder, &status, &headers, &msg.response.body],
            )
            .await?;
            return Ok(Ok(()));
        };
        let key = KeyAnswer {
            key: msg.key,
            holder,
            status,
            headers,
            body: msg.response.body,
        };
        Ok(
            match self.write_outcome(order, from, false, Some(key)).await? {
                Updated::Written => Ok(()),
                Updated::Stale(current) => Err(current),
            },
        )
    }

    async fn release_key(&self, msg: Release) -> Result<(), StoreError> {
        let holder = msg.holder.as_uuid();
        self.query(
            "UPDATE idempotency_keys SET holder = NULL, lease_until = NULL
                 WHERE key = $1 AND holder = $2 AND response_status IS NULL
                 RETURNING key",
            &[&msg.key, &holder],
        )
        .await?;
        Ok(())
    }

    /// Deletes expired keys in batches, so that no statement holds many
    /// row locks or runs long. A key is never forgotten while it is held
    /// or its order is pending: its client's retry must resume that order,
    /// not start a second one.
    async fn sweep_keys(&self) -> Result<usize, StoreError> {
        let mut removed = 0;
        loop {
            let deleted = self
                .query(
                    "DELETE FROM idempotency_keys WHERE key IN (
                             SELECT k.key FROM idempotency_keys k
                             WHERE k.expires_at < now()
                               AND (k.holder IS NULL OR k.lease_until <= now())
                               AND NOT EXISTS (SELECT 1 FROM orders o
                                   WHERE o.order_id = k.order_id AND o.status = 'pending')
                             LIMIT $1 FOR UPDATE OF k SKIP LOCKED)
                         RETURNING key",
                    &[&SWEEP_BATCH],
                )
                .await?
                .len();
            removed += deleted;
            if (deleted as i64) < SWEEP_BATCH {
                return Ok(removed);
            }
        }
    }

    async fn key_stats(&self) -> Result<Stats, StoreError> {
        let rows = self
            .query(
                // In flight: held under a live lease. A key whose holder
                // died is free once its lease ends (the next request
                // takes it over), so it counts as released.
                "SELECT count(*),
                            count(*) FILTER (WHERE holder IS NOT NULL AND lease_until > now()),
                            count(*) FILTER (WHERE response_status IS NOT NULL),
                            count(*) FILTER (WHERE response_status IS NULL
                                             AND (holder IS NULL OR lease_until <= now()))
                     FROM idempotency_keys",
                &[],
            )
            .await?;
        let count = |i| rows[0].get::<_, i64>(i) as usize;
        Ok(Stats {
            entries: count(0),
            in_flight: count(1),
            completed: count(2),
            released: count(3),
        })
    }
}

/// A key taken by another request, as its row stands: for another body,
/// completed (its answer replayed), or in flight.
fn taken(row: &Row, fingerprint: &str) -> Result<Reservation<OrderId>, StoreError> {
    if row.get::<_, &str>(0) != fingerprint {
        return Ok(Reservation::Mismatch);
    }
    Ok(match row.get::<_, Option<i16>>(1) {
        Some(status) => Reservation::Replay(Arc::new(StoredResponse {
            status: status as u16,
            headers: serde_json::from_value(row.get(2)).map_err(unavailable)?,
            body: row.get(3),
        })),
        // Written with its key, in one statement: readable.
        None => Reservation::InFlight {
            order_id: Some(OrderId::from_uuid(row.get(4))),
        },
    })
}

/// The keys live beside the orders: a reservation writes its `pending`
/// order, and a completion its outcome, in the same statement.
impl KeyBackend for PgStore {
    type Id = OrderId;
    type Record = Order;
    type Effect = Settle;

    fn reserve(&self, msg: Reserve<Order, OrderId>) -> Answer<Reservation<OrderId>> {
        let store = self.clone();
        // The order's origin is the request's span (the caller's), not this
        // actor's: re-drives link to it, as to an unkeyed order's.
        let trace = msg
            .span
            .in_scope(observability::TraceLink::current)
            .to_traceparent();
        Box::pin(async move {
            store
                .reserve_key(msg, trace)
                .await
                .map_err(KeyStoreError::from)
        })
    }

    fn complete(&self, msg: Complete<Settle>) -> Answer<Completion<Settle>> {
        let store = self.clone();
        Box::pin(async move { store.complete_key(msg).await.map_err(KeyStoreError::from) })
    }

    fn release(&self, msg: Release) -> Answer<()> {
        let store = self.clone();
        Box::pin(async move { store.release_key(msg).await.map_err(KeyStoreError::from) })
    }

    fn sweep(&self) -> Answer<usize> {
        let store = self.clone();
        Box::pin(async move { store.sweep_keys().await.map_err(KeyStoreError::from) })
    }

    fn stats(&self) -> Answer<Stats> {
        let store = self.clone();
        Box::pin(async move { store.key_stats().await.map_err(KeyStoreError::from) })
    }
}
