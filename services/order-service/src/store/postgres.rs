//! The shared store: orders, idempotency keys and the reconciler's schedule
//! in PostgreSQL, for any number of order-service replicas.
//!
//! Every write is one statement (data-modifying CTEs where it touches two
//! tables), so each is atomic on its own and commits once: a keyed order
//! that succeeds commits twice in all (the key with its `pending` order;
//! the outcome with the key's completion). Under load the orders' writes
//! go many to a statement and both statements in one transaction
//! ([`batch`]), so that a round trip and a commit serve many orders; that
//! transaction is sent whole in one go, and no transaction is ever left
//! open by a request that goes away. (Reserving a key that exists
//! takes up to three more statements, each re-checking what the one
//! before saw.)
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

use deadpool_postgres::{Client, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

use super::{Cause, Redrives, StoreError};

type Param<'a> = &'a (dyn ToSql + Sync);

mod batch;
mod keys;
mod migrations;
mod orders;
mod schedule;
mod writes;

#[derive(Debug, Clone)]
pub struct PgSettings {
    pub pool_size: usize,
    /// Longest wait for a pooled connection (at most the payment budget).
    pub acquire_timeout: Duration,
    /// Longest wait for one operation, connection included.
    pub statement_timeout: Duration,
    pub key_ttl: Duration,
    pub key_lease: Duration,
    /// Orders' writes sharing one transaction, at most ([`batch`]).
    pub batch_max: usize,
    /// Transactions of orders' writes under way at once.
    pub batch_writers: usize,
}

#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    settings: PgSettings,
    redrives: Redrives,
    migrated: AtomicBool,
    /// The end of the latest migration attempt (at start, or for a caller).
    attempt: std::sync::Mutex<Option<migrations::Attempt>>,
    /// This process, as `claimed_by` (for people reading the table).
    replica: Uuid,
    batcher: batch::Batcher,
}

/// What a transaction's statements and its commit answered, as one
/// outcome: written; refused (an `ERROR` inside the transaction, which the
/// server then rolls back whole, `COMMIT` included); or uncertain.
fn settled(
    begun: bool,
    rows: Vec<Result<Vec<Row>, tokio_postgres::Error>>,
    committed: Result<(), tokio_postgres::Error>,
) -> Result<Vec<Vec<Row>>, StoreError> {
    let mut answered = Vec::with_capacity(rows.len());
    // The failure to tell: a refusal, if there was one.
    let mut failure: Option<tokio_postgres::Error> = None;
    let results = rows.into_iter().map(Some).chain([committed.err().map(Err)]);
    for result in results.flatten() {
        match result {
            Ok(rows) => answered.push(rows),
            Err(e) if failure.as_ref().is_none_or(|f| !refused(f)) => failure = Some(e),
            Err(_) => {}
        }
    }
    match failure {
        None => Ok(answered),
        Some(e) if begun && refused(&e) => Err(unavailable(e)),
        Some(e) => Err(uncertain(e)),
    }
}

/// What a timed-out operation says.
const LATE: &str = "the database did not answer in time";

fn unavailable(cause: impl Into<Cause>) -> StoreError {
    StoreError::Unavailable(cause.into())
}

fn uncertain(cause: impl Into<Cause>) -> StoreError {
    StoreError::Uncertain(cause.into())
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
    pub fn new(url: &str, settings: PgSettings, redrives: Redrives) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| unavailable(format!("DATABASE_URL: {e}")))?;
        // A database host that vanishes without a word (no FIN, no RST)
        // must not keep dead connections in the pool for the kernel's
        // quarter of an hour; and a statement given up on here must not
        // commit much later there.
        //
        // The other way round, a transaction this side gave up on between
        // two statements (its link went half-open) leaves a session on the
        // server waiting for the rest, holding its locks — a migration's
        // advisory lock keeps every replica unready — until the server
        // hears the connection end: never, behind a peer that still
        // acknowledges, or hours later. The server ends it instead. The
        // gap it sees between two statements of a live transaction spans
        // the end of one round trip and the start of the next, each
        // bounded here by the timeout: twice the timeout leaves it that.
        let timeout = settings.statement_timeout;
        config
            .connect_timeout(timeout)
            .tcp_user_timeout(timeout.max(Duration::from_secs(1)))
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(1))
            .options(format!(
                "-c statement_timeout={} -c idle_in_transaction_session_timeout={}",
                timeout.as_millis(),
                2 * timeout.as_millis()
            ));
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
                batcher: batch::Batcher::new(settings.batch_max, settings.batch_writers),
                settings,
                redrives,
                migrated: AtomicBool::new(false),
                attempt: std::sync::Mutex::new(None),
                replica: Uuid::new_v4(),
            }),
        })
    }

    fn settings(&self) -> &PgSettings {
        &self.inner.settings
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
        let deadline = tokio::time::Instant::now() + self.settings().statement_timeout;
        let client = self.connect(deadline).await?;
        self.run(client, deadline, sql, params).await
    }

    /// A pooled connection by `deadline`, the schema migrated first.
    async fn connect(&self, deadline: tokio::time::Instant) -> Result<Client, StoreError> {
        let connect = async {
            // At the deadline only the wait for a migration ends; the
            // migration goes on, a task of its own.
            self.migrate().await?;
            self.inner.pool.get().await.map_err(unavailable)
        };
        tokio::time::timeout_at(deadline, connect)
            .await
            .map_err(|_| unavailable(LATE))?
    }

    /// Runs one statement on `client` by `deadline`, as [`Self::query`]
    /// says; the connection goes back to the pool only if it answered.
    async fn run(
        &self,
        client: Client,
        deadline: tokio::time::Instant,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<Row>, StoreError> {
        self.send(client, deadline, None, &[(sql, params)])
            .await
            .map(|mut rows| rows.pop().unwrap_or_default())
    }

    /// Runs `statements` on `client` by `deadline` in one transaction, and
    /// answers each one's rows; fails as [`Self::query`] says, for all of
    /// them. The transaction is sent in one go (`BEGIN`, the statements,
    /// `COMMIT`, pipelined): a task that is dropped after sending it leaves
    /// the server nothing to wait for. Its statements get a third of the
    /// time left each: when the server gives up on a slow one (a lock
    /// wait, a deadlock, a slow row), its writes can still be tried again,
    /// alone, in their callers' time.
    async fn transact(
        &self,
        client: Client,
        deadline: tokio::time::Instant,
        statements: &[(&str, &[Param<'_>])],
    ) -> Result<Vec<Vec<Row>>, StoreError> {
        let third = deadline.saturating_duration_since(tokio::time::Instant::now()) / 3;
        let begin = format!(
            "BEGIN; SET LOCAL statement_timeout = {}",
            third.as_millis().max(1)
        );
        self.send(client, deadline, Some(&begin), statements).await
    }

    /// Sends `statements`, in a transaction opened by `begin` if any.
    async fn send(
        &self,
        client: Client,
        deadline: tokio::time::Instant,
        begin: Option<&str>,
        statements: &[(&str, &[Param<'_>])],
    ) -> Result<Vec<Vec<Row>>, StoreError> {
        // Preparing changes nothing: until it is done, nothing was sent.
        let sent = AtomicBool::new(false);
        let run = async {
            let mut prepared = Vec::with_capacity(statements.len());
            for (sql, _) in statements {
                prepared.push(client.prepare_cached(sql).await.map_err(unavailable)?);
            }
            sent.store(true, Ordering::Relaxed);
            let queries = prepared
                .iter()
                .zip(statements)
                .map(|(statement, (_, params))| client.query(statement, params));
            let Some(begin) = begin else {
                let rows = futures_util::future::join_all(queries).await;
                return settled(true, rows, Ok(()));
            };
            let (begun, rows, committed) = futures_util::join!(
                client.batch_execute(begin),
                futures_util::future::join_all(queries),
                client.batch_execute("COMMIT"),
            );
            settled(begun.is_ok(), rows, committed)
        };
        match tokio::time::timeout_at(deadline, run).await {
            Ok(done) => done,
            Err(_) => {
                drop(deadpool_postgres::Client::take(client));
                Err(match sent.load(Ordering::Relaxed) {
                    true => uncertain(LATE),
                    false => unavailable(LATE),
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
        let r = &self.inner.redrives;
        [millis(r.hold), millis(r.interval), millis(r.max_backoff)]
    }
}
