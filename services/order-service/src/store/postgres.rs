//! The shared store: orders, idempotency keys and the reconciler's schedule
//! in PostgreSQL, for any number of order-service replicas.
//!
//! Every write is one statement (data-modifying CTEs where it touches two
//! tables), so each is atomic on its own, costs one round trip, and commits
//! once: a keyed order that succeeds commits twice in all (the key with its
//! `pending` order; the outcome with the key's completion). No explicit
//! transaction is ever left open by a request that goes away. (Reserving a
//! key that exists takes up to three statements, each re-checking what the
//! one before saw.)
//! Every time is the database's `now()`, so replicas whose clocks disagree
//! still agree on leases and due times.
//!
//! The pool is bounded; a connection is waited for at most the acquire
//! timeout (never more than the payment budget) and every operation at
//! most the statement timeout. A database that is down or slow is a
//! `StoreError::Unavailable`: 503 for the request, 503 on `/ready`, and the
//! service resumes by itself when it returns. The schema is migrated on
//! first use (and at start, if the database answers then), under an
//! advisory lock so that replicas starting together do not race.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actors::idempotency::{
    Answer, Complete, Completion, KeyBackend, KeyStoreError, Release, Reservation, Reserve, Stats,
    StoredResponse,
};
use async_trait::async_trait;
use common::domain::{Amount, Currency, MerchantId, OrderId};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

use super::{OrderStore, Settle, StoreError, Updated};
use crate::domain::{Order, OrderStatus};

/// The versioned migrations, in order, embedded in the binary.
const MIGRATIONS: &[(i32, &str, &str)] = &[(
    1,
    "orders_and_keys",
    include_str!("../../migrations/0001_orders_and_keys.sql"),
)];

/// Taken by whoever migrates; any constant shared by all replicas.
const MIGRATION_LOCK: i64 = 0x6f72_6465_7273; // "orders"

/// The compare-and-set that writes an order's outcome (`$1` its id, `$2`
/// the status, `$3`–`$6` transaction id, reason, maybe charged, calls; `$7`
/// the status read; `$8`–`$10` hold, interval and max backoff in ms): only
/// from the status read, never a `failed` from a writer whose count of
/// calls is behind; a pending order is due again after the longest call,
/// backing off with its re-drives.
macro_rules! set_outcome {
    () => {
        "UPDATE orders SET status = $2, transaction_id = $3, reason = $4,
             maybe_charged = $5, calls = GREATEST(calls, $6),
             due_at = CASE WHEN $2 = 'pending' THEN now() + GREATEST($8,
                 LEAST($9 * power(2, LEAST(attempts, 16)), $10))
                 * interval '1 millisecond' END
         WHERE order_id = $1 AND status = $7
           AND NOT ($2 = 'failed' AND $6 < calls)"
    };
}

/// The columns of a new order after its id, in this order.
macro_rules! order_columns {
    () => {
        "status, merchant_id, amount, currency, transaction_id, reason, created_at,
         maybe_charged, calls"
    };
}

/// An order as bind parameters: the values its columns hold.
struct Bound<'a> {
    order: &'a Order,
    id: Uuid,
    status: &'static str,
    merchant: &'a str,
    amount: rust_decimal::Decimal,
    currency: &'static str,
    calls: i32,
}

type Param<'a> = &'a (dyn ToSql + Sync);

impl<'a> Bound<'a> {
    fn new(order: &'a Order) -> Self {
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

    /// For [`order_columns!`].
    fn columns(&self) -> [Param<'_>; 9] {
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
    fn outcome(&self) -> [Param<'_>; 6] {
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

/// Rows deleted per statement by the TTL sweep.
const SWEEP_BATCH: i64 = 1_000;

#[derive(Debug, Clone)]
pub struct PgSettings {
    pub pool_size: usize,
    /// Longest wait for a pooled connection (at most the payment budget).
    pub acquire_timeout: Duration,
    /// Longest wait for one operation, connection included.
    pub statement_timeout: Duration,
    pub key_ttl: Duration,
    pub key_lease: Duration,
    /// A new pending order is first due this long after it is written, and
    /// a claim lasts as long: the longest payment call.
    pub hold: Duration,
    /// The reconciler's first backoff, doubled per re-drive, up to the max.
    pub redrive_interval: Duration,
    pub redrive_max_backoff: Duration,
}

#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    settings: PgSettings,
    migrated: AtomicBool,
    migrating: tokio::sync::Mutex<()>,
    /// This process, as `claimed_by` (for people reading the table).
    replica: Uuid,
}

fn unavailable(cause: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(cause.to_string())
}

fn uncertain(cause: impl std::fmt::Display) -> StoreError {
    StoreError::Uncertain(cause.to_string())
}

/// The server answered the statement with an `ERROR`: it was rolled back.
/// (A `FATAL`, such as an immediate shutdown, can arrive after the commit
/// was made durable; a connection that broke tells nothing.)
fn refused(e: &tokio_postgres::Error) -> bool {
    e.as_db_error()
        .and_then(|db| db.parsed_severity())
        .is_some_and(|severity| severity == tokio_postgres::error::Severity::Error)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl PgStore {
    /// A store on `url`; connects lazily (a database that is down now makes
    /// the service unready, not unable to start).
    pub fn new(url: &str, settings: PgSettings) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Unavailable(format!("DATABASE_URL: {e}")))?;
        // A database host that vanishes without a word (no FIN, no RST)
        // must not keep dead connections in the pool for the kernel's
        // quarter of an hour; and a statement given up on here must not
        // commit much later there.
        let timeout = settings.statement_timeout;
        config
            .connect_timeout(timeout)
            .tcp_user_timeout(timeout.max(Duration::from_secs(1)))
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(1))
            .options(format!("-c statement_timeout={}", timeout.as_millis()));
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .timeouts(Timeouts {
                wait: Some(settings.acquire_timeout),
                create: Some(settings.statement_timeout),
                recycle: Some(settings.statement_timeout),
            })
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(unavailable)?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                settings,
                migrated: AtomicBool::new(false),
                migrating: tokio::sync::Mutex::new(()),
                replica: Uuid::new_v4(),
            }),
        })
    }

    fn settings(&self) -> &PgSettings {
        &self.inner.settings
    }

    /// Applies the migrations this database lacks, in one transaction under
    /// an advisory lock: a replica that waits for it then finds them done.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.inner.migrating.lock().await;
        if self.inner.migrated.load(Ordering::Acquire) {
            return Ok(());
        }
        let work = async {
            let mut client = self.inner.pool.get().await.map_err(unavailable)?;
            let tx = client.transaction().await.map_err(unavailable)?;
            // Waiting for another replica's migration is not a slow statement.
            tx.batch_execute("SET LOCAL statement_timeout = 0")
                .await
                .map_err(unavailable)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await
                .map_err(unavailable)?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version integer PRIMARY KEY,
                     name text NOT NULL,
                     applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .await
            .map_err(unavailable)?;
            let applied: Vec<i32> = tx
                .query("SELECT version FROM schema_migrations", &[])
                .await
                .map_err(unavailable)?
                .iter()
                .map(|row| row.get(0))
                .collect();
            for (version, name, sql) in MIGRATIONS {
                if applied.contains(version) {
                    continue;
                }
                tx.batch_execute(sql).await.map_err(unavailable)?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    &[version, name],
                )
                .await
                .map_err(unavailable)?;
                tracing::info!(version, name, "database migrated");
            }
            tx.commit().await.map_err(unavailable)
        };
        // Migrations may wait for another replica's: longer than a request.
        tokio::time::timeout(Duration::from_secs(60), work)
            .await
            .map_err(|_| unavailable("migrations timed out"))??;
        self.inner.migrated.store(true, Ordering::Release);
        Ok(())
    }

    /// Runs one statement on a pooled connection (prepared once per
    /// connection), within the statement timeout, the schema migrated
    /// first. A connection whose statement timed out is closed, not pooled
    /// again: its peer may be gone.
    ///
    /// A failure says whether the statement may have taken effect: not
    /// when no connection was had, when it was never sent, or when the
    /// server refused it (an `ERROR` rolls the statement back); otherwise
    /// it may have, or may still — a statement given up on here can
    /// commit there later — and the error is [`StoreError::Uncertain`].
    async fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        let late = "the database did not answer in time";
        let deadline = tokio::time::Instant::now() + self.settings().statement_timeout;
        let connect = async {
            // Within the timeout: while the database is down, requests
            // must not queue behind one another's migration attempts.
            if !self.inner.migrated.load(Ordering::Acquire) {
                self.migrate().await?;
            }
            self.inner.pool.get().await.map_err(unavailable)
        };
        let client = tokio::time::timeout_at(deadline, connect)
            .await
            .map_err(|_| unavailable(late))??;
        // Preparing changes nothing: until it is done, nothing was sent.
        let sent = AtomicBool::new(false);
        let run = async {
            let statement = client.prepare_cached(sql).await.map_err(unavailable)?;
            sent.store(true, Ordering::Relaxed);
            client
                .query(&statement, params)
                .await
                .map_err(|e| match refused(&e) {
                    true => unavailable(e),
                    false => uncertain(e),
                })
        };
        match tokio::time::timeout_at(deadline, run).await {
            Ok(done) => done,
            Err(_) => {
                drop(deadpool_postgres::Client::take(client));
                Err(match sent.load(Ordering::Relaxed) {
                    true => uncertain(late),
                    false => unavailable(late),
                })
            }
        }
    }

    /// Closes the pool: its connections end (tests read the database's
    /// statistics, which a backend reports when it exits).
    pub fn close(&self) {
        self.inner.pool.close();
    }

    /// The due time of a write that leaves an order pending: after the
    /// longest call, and backing off with the re-drives so far.
    fn due_params(&self) -> [f64; 3] {
        let s = self.settings();
        [
            millis(s.hold),
            millis(s.redrive_interval),
            millis(s.redrive_max_backoff),
        ]
    }

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

    /// Records `trace` (a traceparent) as the order's origin.
    async fn insert_order(&self, order: &Order, trace: Option<String>) -> Result<(), StoreError> {
        let [hold, ..] = self.due_params();
        let row = Bound::new(order);
        let inserted = self
            .query(
                concat!(
                    "INSERT INTO orders (order_id, ",
                    order_columns!(),
                    ", due_at, trace)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                                 now() + $11 * interval '1 millisecond', $12)
                         ON CONFLICT (order_id) DO NOTHING
                         RETURNING order_id"
                ),
                &[&[&row.id as Param], &row.columns()[..], &[&hold, &trace]].concat(),
            )
            .await?;
        if inserted.is_empty() {
            return Err(StoreError::Duplicate(order.order_id));
        }
        Ok(())
    }

    /// The compare-and-set under `update` and `claim`: `claim` also
    /// requires the stored count of calls to be the one the claimer read.
    async fn write_if(
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
    async fn write_outcome(
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

    async fn reserve_key(
        &self,
        msg: Reserve<Order>,
        trace: Option<String>,
    ) -> Result<Reservation, StoreError> {
        let s = self.settings();
        let (lease, ttl) = (millis(s.key_lease), s.key_ttl.as_secs_f64());
        let [hold, ..] = self.due_params();
        let holder = msg.holder.as_uuid();
        let row = Bound::new(&msg.record);
        let candidate = OrderId::parse(&msg.order_id)
            .map_err(unavailable)?
            .as_uuid();
        let key_params: &[Param] = &[
            &msg.key,
            &msg.fingerprint,
            &candidate,
            &holder,
            &lease,
            &ttl,
        ];
        // A key swept between two statements is simply new again.
        for _ in 0..3 {
            let created = self
                .query(
                    concat!(
                        "WITH key AS (
                                 INSERT INTO idempotency_keys
                                     (key, fingerprint, order_id, holder, lease_until, expires_at)
                                 VALUES ($1, $2, $3, $4, now() + $5 * interval '1 millisecond',
                                         now() + $6 * interval '1 second')
                                 ON CONFLICT (key) DO NOTHING
                                 RETURNING order_id)
                             INSERT INTO orders (order_id, ",
                        order_columns!(),
                        ", due_at, trace)
                             SELECT order_id, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                                    now() + $16 * interval '1 millisecond', $17
                             FROM key
                             RETURNING order_id"
                    ),
                    &[key_params, &row.columns()[..], &[&hold, &trace]].concat(),
                )
                .await?;
            if !created.is_empty() {
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
                let order_id: Uuid = row.get(0);
                return Ok(Reservation::Resume {
                    order_id: OrderId::from_uuid(order_id).to_string(),
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
        let (status, body) = (msg.response.status as i16, &msg.response.body);
        let holder = msg.holder.as_uuid();
        let Settle::Order { order, from } = msg.effect else {
            self.query(
                "UPDATE idempotency_keys SET holder = NULL, lease_until = NULL,
                         response_status = $3, response_headers = $4, response_body = $5
                     WHERE key = $1 AND holder = $2
                     RETURNING key",
                &[&msg.key, &holder, &status, &headers, body],
            )
            .await?;
            return Ok(Ok(()));
        };
        let sql = concat!(
            "WITH settled AS (",
            set_outcome!(),
            " RETURNING order_id),
             completed AS (
                 UPDATE idempotency_keys SET holder = NULL, lease_until = NULL,
                     response_status = $13, response_headers = $14, response_body = $15
                 WHERE key = $11 AND holder = $12 AND EXISTS (SELECT 1 FROM settled)
                 RETURNING key)
             SELECT EXISTS (SELECT 1 FROM settled)"
        );
        let key: [Param; 5] = [&msg.key, &holder, &status, &headers, body];
        Ok(match self.write_outcome(&order, from, sql, &key).await? {
            Updated::Written => Ok(()),
            Updated::Stale(current) => Err(current),
        })
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
fn taken(row: &Row, fingerprint: &str) -> Result<Reservation, StoreError> {
    if row.get::<_, &str>(0) != fingerprint {
        return Ok(Reservation::Mismatch);
    }
    Ok(match row.get::<_, Option<i16>>(1) {
        Some(status) => Reservation::Replay(Arc::new(StoredResponse {
            status: status as u16,
            headers: serde_json::from_value(row.get(2)).map_err(unavailable)?,
            body: row.get(3),
        })),
        None => Reservation::InFlight {
            order_id: OrderId::from_uuid(row.get(4)).to_string(),
        },
    })
}

fn order_from(row: &Row) -> Result<Order, StoreError> {
    let corrupt = |what: &str| StoreError::Unavailable(format!("stored order has a bad {what}"));
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
}

/// The keys live beside the orders: a reservation writes its `pending`
/// order, and a completion its outcome, in the same statement.
impl KeyBackend for PgStore {
    type Record = Order;
    type Effect = Settle;

    fn reserve(&self, msg: Reserve<Order>) -> Answer<Reservation> {
        let store = self.clone();
        // The reservation's caller is the request: its trace is current here.
        let trace = observability::TraceLink::current().to_traceparent();
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
