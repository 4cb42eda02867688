//! The schema, migrated by whichever replica gets there first: in one
//! transaction under an advisory lock, so that replicas starting together
//! do not race, and a replica that finds the lock taken tries again until
//! the other is done.
//!
//! Every step of a migration (a statement: one round trip, or two where
//! it is prepared first) is bounded by the statement timeout, and its
//! connection goes back to the pool only if the migration got an
//! answer to each: a connection whose peer vanished without a word (a
//! half-open link, behind a proxy that keeps acknowledging) would
//! otherwise be handed to every later attempt, each hanging until its
//! caller gave up, and the replica would never be ready again. The
//! server's side of such a link waits in the transaction, holding the
//! lock, until it ends the session as idle in a transaction (every
//! connection sets the timeout: `PgStore::new`). Waiting for another
//! replica is a retry of `pg_try_advisory_xact_lock`, not a statement
//! blocked on the lock. A migration must therefore run each
//! statement within `DATABASE_TIMEOUT_MS`; the embedded ones take
//! milliseconds. The whole of it may take longer than one request waits
//! (eight statements over a slow link), so an attempt is a task of its
//! own that requests wait for: were it given up on with each request
//! that stops waiting, such a replica would never be ready.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use deadpool_postgres::Client;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{LATE, PgStore, unavailable};
use crate::store::{Cause, StoreError};

/// The versioned migrations, in order, embedded in the binary.
const MIGRATIONS: &[(i32, &str, &str)] = &[(
    1,
    "orders_and_keys",
    include_str!("../../../migrations/0001_orders_and_keys.sql"),
)];

/// Taken by whoever migrates; any constant shared by all replicas.
const MIGRATION_LOCK: i64 = 0x6f72_6465_7273; // "orders"

/// How long a replica waits for another's migration before it gives up
/// (until its next attempt: the next request, or the next probe).
const WAIT_FOR_OTHERS: Duration = Duration::from_secs(60);

/// A pooled connection that returns to the pool only through
/// [`Checked::keep`]: dropped otherwise (an error, a timeout, a caller
/// that went away), it is closed.
struct Checked(Option<Client>);

impl Checked {
    fn client(&mut self) -> &mut Client {
        self.0.as_mut().expect("a connection until kept")
    }

    fn keep(mut self) {
        drop(self.0.take());
    }
}

impl Drop for Checked {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(Client::take(client));
        }
    }
}

/// `e` with each of its sources: the driver's "db error" says nothing
/// without the server's message under it.
fn described(e: &StoreError) -> String {
    let Some(mut cause) = std::error::Error::source(e) else {
        return e.to_string();
    };
    let mut text = cause.to_string();
    while let Some(under) = cause.source() {
        text = format!("{text}: {under}");
        cause = under;
    }
    text
}

/// `work` within `limit`: its failure, or [`LATE`], as unavailable.
async fn within<T, E: Into<Cause>>(
    limit: Duration,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, work).await {
        Ok(done) => done.map_err(unavailable),
        Err(_) => Err(unavailable(LATE)),
    }
}

/// A migration attempt's end: `None` while it runs, then its outcome (a
/// failure as its cause's text, shared by everyone who waited).
pub(super) type Attempt = watch::Receiver<Option<Result<(), Arc<str>>>>;

impl PgStore {
    /// The schema migrated: if it is not yet, the caller waits for the
    /// attempt under way, or starts one. An attempt is a task of its own,
    /// bounded per statement but not by its callers (a request waits up to
    /// its deadline, then drops this future): one that needs longer than a
    /// caller waits (a slow link, a lock held a while) still ends, and a
    /// later caller finds the schema migrated; and while the database is
    /// down, one attempt at a time is made, however many requests wait.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        if self.inner.migrated.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut attempt = self.attempt();
        let ended = attempt
            .wait_for(Option::is_some)
            .await
            .map_err(|_| unavailable("the migration's task ended without an outcome"))?;
        match ended.as_ref().expect("waited for an outcome") {
            Ok(()) => Ok(()),
            Err(cause) => Err(unavailable(cause.to_string())),
        }
    }

    /// Starts an attempt now, unless one is under way: at start, where
    /// nobody waits for it (its failure is logged, and the next request
    /// tries again).
    pub fn start_migrating(&self) {
        drop(self.attempt());
    }

    /// The attempt under way, or a new one: the one place an attempt
    /// starts, so that no two of this process run at once.
    fn attempt(&self) -> Attempt {
        let mut latest = self
            .inner
            .attempt
            .lock()
            .expect("never held across a panic");
        // (An attempt whose task is gone without an outcome is over too.)
        let under_way = |a: &&Attempt| a.borrow().is_none() && a.has_changed().is_ok();
        if let Some(under_way) = latest.as_ref().filter(under_way) {
            return under_way.clone();
        }
        let (end, attempt) = watch::channel(None);
        let store = self.clone();
        tokio::spawn(async move {
            let outcome = store.apply().await.map_err(|e| Arc::from(described(&e)));
            // Told to whoever waits; said here when nobody does any more
            // (the attempt outlived them all), or else it goes unseen.
            if let Err(cause) = &outcome
                && end.receiver_count() <= 1
            {
                tracing::warn!(error = %cause, "migrating the schema failed; the next request tries again");
            }
            end.send_replace(Some(outcome));
        });
        *latest = Some(attempt.clone());
        attempt
    }

    /// Applies the migrations this database lacks, waiting for another
    /// replica's migration up to [`WAIT_FOR_OTHERS`].
    async fn apply(&self) -> Result<(), StoreError> {
        if self.inner.migrated.load(Ordering::Acquire) {
            return Ok(());
        }
        let give_up = Instant::now() + WAIT_FOR_OTHERS;
        while !self.migrate_once().await? {
            if Instant::now() > give_up {
                return Err(unavailable(
                    "another replica's migration is taking too long",
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.inner.migrated.store(true, Ordering::Release);
        Ok(())
    }

    /// One attempt: false if another replica holds the lock.
    async fn migrate_once(&self) -> Result<bool, StoreError> {
        let step = self.settings().statement_timeout;
        let mut checked = Checked(Some(within(step, self.inner.pool.get()).await?));
        let client = checked.client();
        let tx = within(step, client.transaction()).await?;
        let locked = within(
            step,
            tx.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&MIGRATION_LOCK]),
        )
        .await?;
        if !locked.get::<_, bool>(0) {
            within(step, tx.rollback()).await?;
            checked.keep();
            return Ok(false);
        }
        within(
            step,
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version integer PRIMARY KEY,
                     name text NOT NULL,
                     applied_at timestamptz NOT NULL DEFAULT now())",
            ),
        )
        .await?;
        let applied = within(step, tx.query("SELECT version FROM schema_migrations", &[]))
            .await?
            .iter()
            .map(|row| row.try_get::<_, i32>(0))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| unavailable(format!("schema_migrations is another tool's table: {e}")))?;
        for (version, name, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            within(step, tx.batch_execute(sql)).await?;
            let insert = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)";
            within(step, tx.execute(insert, &[version, name])).await?;
            tracing::info!(version, name, "database migrated");
        }
        within(step, tx.commit()).await?;
        checked.keep();
        Ok(true)
    }
}
