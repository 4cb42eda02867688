//! Group commit across requests. Every order writes twice (its `pending`
//! row, then its outcome), and each write alone costs a round trip and a
//! commit, whose flush of the log is most of the database's time. Here a
//! write waits in a queue while an earlier transaction is under way, and
//! the next one takes everything queued: each kind of write as one
//! statement, both statements in one transaction, sent in one go — one
//! round trip and one flush for many orders (docs/postgres-path.md has the
//! figures). With nothing under way a write goes at once, alone, so a
//! quiet service waits for nothing.
//!
//! What a write's caller is told stays true:
//! - a write its caller gave up on (timed out, or dropped) before a
//!   transaction took it is never sent: the caller said nothing was
//!   written;
//! - a taken write shares its transaction's fate: committed, refused, or
//!   uncertain (no answer, or none in time) for all of them;
//! - a transaction the server refused (an `ERROR`, all of it rolled back:
//!   a bad row, a deadlock) is tried again with each write alone, so that
//!   one write cannot fail the others; and as the server gives up on a
//!   statement of a transaction after a third of the time left, and the
//!   writes tried alone are each answered when written, a slow write (a
//!   lock wait, a slow row) still leaves the others time.
//!
//! No transaction holds two writes of one order, and no two under way
//! here hold one order: `UPDATE … FROM` would apply one of two rows for
//! the same target, unpredictably. New orders go before outcomes: a key an
//! outcome completes was taken before, so a new order for it is refused
//! (and reads the key after the commit) as if it had come first. The
//! runners are tasks of their own, so a request that goes away takes
//! nobody's transaction with it. A runner runs on the runtime of the write
//! that started it (an HTTP worker's, mostly: a runner on a thread of its
//! own cost order-service 10–15 % more CPU per order); if that runtime
//! stops while its transaction is under way, the writes are uncertain, as
//! for a broken connection, and the next write starts a runner elsewhere.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::writes::{NewOrder, Outcome};
use super::{LATE, Param, PgStore, unavailable, uncertain};
use crate::store::StoreError;

/// A write that can share its statement with others of its kind.
pub(super) trait Write: Send + Sync + Sized + 'static {
    /// The statement: binds [`Write::params`] and returns the order id of
    /// every write it made.
    const SQL: &'static str;

    /// The queue this kind of write waits in.
    fn entries(queue: &mut Queue) -> &mut VecDeque<Entry<Self>>;

    /// The order the write is for.
    fn order_id(&self) -> Uuid;

    /// The statement's parameters for `writes`, in their order.
    fn params<'a>(store: &PgStore, writes: &[&'a Self]) -> Params<'a>;
}

const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const CANCELLED: u8 = 2;

type Answer = Result<bool, StoreError>;

pub(super) struct Entry<W> {
    write: W,
    state: Arc<AtomicU8>,
    answer: oneshot::Sender<Answer>,
}

pub(super) struct Queue {
    pub(super) new_orders: VecDeque<Entry<NewOrder>>,
    pub(super) outcomes: VecDeque<Entry<Outcome>>,
    /// Runner tasks alive.
    runners: usize,
    /// Orders in a transaction under way.
    busy: HashSet<Uuid>,
}

/// The two writes' queues and their runners.
pub(super) struct Batcher {
    queue: Mutex<Queue>,
    max_writes: usize,
    max_runners: usize,
}

/// What one runner took: one transaction's worth.
struct Taken {
    new_orders: Vec<Entry<NewOrder>>,
    outcomes: Vec<Entry<Outcome>>,
}

impl Batcher {
    /// At most `max_writes` writes per transaction and `max_runners`
    /// transactions under way at once.
    pub(super) fn new(max_writes: usize, max_runners: usize) -> Self {
        Self {
            queue: Mutex::new(Queue {
                new_orders: VecDeque::new(),
                outcomes: VecDeque::new(),
                runners: 0,
                busy: HashSet::new(),
            }),
            max_writes: max_writes.max(1),
            max_runners: max_runners.max(1),
        }
    }

    /// Takes a runner's place if writes wait and fewer than the most
    /// runners are alive: then the caller starts one ([`spawn_runner`]).
    fn place(&self, queue: &mut Queue) -> bool {
        let waiting = !(queue.new_orders.is_empty() && queue.outcomes.is_empty());
        let start = waiting && queue.runners < self.max_runners;
        queue.runners += usize::from(start);
        start
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic elsewhere cannot leave the queue half-changed: every
        // change under the lock is one push, pop or set operation.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes at most `limit` writes, outcomes first (they finish orders
    /// and free keys). Retires the runner (and answers `None`) when
    /// nothing is left to take.
    fn take(&self, limit: usize) -> Option<Taken> {
        let mut queue = self.lock();
        let outcomes = queue.take(limit);
        let taken = Taken {
            new_orders: queue.take(limit - outcomes.len()),
            outcomes,
        };
        if taken.new_orders.is_empty() && taken.outcomes.is_empty() {
            queue.runners -= 1;
            return None;
        }
        Some(taken)
    }
}

impl Queue {
    /// Takes at most `limit` writes of a kind, oldest first: none whose
    /// caller gave up, none for an order already taken.
    fn take<W: Write>(&mut self, limit: usize) -> Vec<Entry<W>> {
        let mut taken: Vec<Entry<W>> = Vec::new();
        let mut left = VecDeque::new();
        while taken.len() < limit {
            let Some(entry) = W::entries(self).pop_front() else {
                break;
            };
            let id = entry.write.order_id();
            if entry.answer.is_closed() {
                entry.state.store(CANCELLED, Ordering::Release);
            } else if self.busy.contains(&id) {
                left.push_back(entry);
            } else if entry
                .state
                .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.busy.insert(id);
                taken.push(entry);
            }
        }
        while let Some(entry) = left.pop_back() {
            W::entries(self).push_front(entry);
        }
        // One order of rows for every statement: two statements lock
        // shared rows in the same order and cannot deadlock on them.
        taken.sort_by_key(|entry| entry.write.order_id());
        taken
    }

    /// Frees the orders of a transaction that has ended.
    fn release(&mut self, orders: &[Uuid]) {
        for id in orders {
            self.busy.remove(id);
        }
    }
}

/// Writes `write` in a transaction shared with others; answers
/// whether it was made (false: a row it conflicts with stands, as the
/// statement's own conditions say), or why not, as [`PgStore::query`]
/// would for a statement of its own.
pub(super) async fn write<W: Write>(store: &PgStore, write: W) -> Answer {
    let deadline = Instant::now() + store.settings().statement_timeout;
    let (answer, answered) = oneshot::channel();
    let state = Arc::new(AtomicU8::new(QUEUED));
    let batcher = &store.inner.batcher;
    let start = {
        let mut queue = batcher.lock();
        W::entries(&mut queue).push_back(Entry {
            write,
            state: state.clone(),
            answer,
        });
        batcher.place(&mut queue)
    };
    if start {
        spawn_runner(store);
    }
    match tokio::time::timeout_at(deadline, answered).await {
        Ok(Ok(answer)) => answer,
        // Too late, or the runner's runtime is gone: the write is
        // withdrawn if no transaction took it yet.
        Ok(Err(_)) | Err(_) => {
            match state.compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => Err(unavailable(LATE)),
                Err(_) => Err(uncertain(LATE)),
            }
        }
    }
}

/// A runner's place: counted out however the runner ends (returns,
/// panics, or is dropped by its runtime, started or not).
struct Running {
    store: PgStore,
    retired: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.retired {
            self.store.inner.batcher.lock().runners -= 1;
        }
    }
}

/// Starts a runner, its place taken already. The place is taken before
/// the spawn: if the task never runs, dropping it gives the place back.
fn spawn_runner(store: &PgStore) {
    let running = Running {
        store: store.clone(),
        retired: false,
    };
    // Without a runtime (it is shutting down) the next write starts one.
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(run(running));
    }
}

/// Orders taken by a transaction: freed however the task that writes them
/// ends, or each as soon as its write has ended.
struct Held {
    store: PgStore,
    orders: Mutex<Vec<Uuid>>,
}

impl Held {
    fn new(store: &PgStore, orders: Vec<Uuid>) -> Self {
        Self {
            store: store.clone(),
            orders: Mutex::new(orders),
        }
    }

    /// Frees `id` before the others.
    fn free(&self, id: Uuid) {
        let mut orders = self.orders.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = orders.iter().position(|order| *order == id) {
            orders.swap_remove(at);
            free(&self.store, &[id]);
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let orders = self.orders.get_mut().unwrap_or_else(|e| e.into_inner());
        free(&self.store, orders);
    }
}

/// Frees `orders`. A write for one of them may wait in the queue, passed
/// over while it was taken, and its runner gone: then one starts.
fn free(store: &PgStore, orders: &[Uuid]) {
    let batcher = &store.inner.batcher;
    let start = {
        let mut queue = batcher.lock();
        queue.release(orders);
        batcher.place(&mut queue)
    };
    if start {
        spawn_runner(store);
    }
}

/// A runner: a connection first (writes wait in the queue meanwhile, and
/// can still be withdrawn), then everything queued, one transaction, the
/// answers; until the queue is empty.
async fn run(mut running: Running) {
    let store = running.store.clone();
    let batcher = &store.inner.batcher;
    loop {
        let deadline = Instant::now() + store.settings().statement_timeout;
        let client = store.connect(deadline).await;
        // Without a connection nothing is sent: every write queued now
        // hears so at once, not only a transaction's worth.
        let limit = match client {
            Ok(_) => batcher.max_writes,
            Err(_) => usize::MAX,
        };
        let Some(taken) = batcher.take(limit) else {
            running.retired = true;
            return;
        };
        let orders = ids(&taken.new_orders).chain(ids(&taken.outcomes));
        let held = Held::new(&store, orders.collect());
        match client {
            Ok(client) => transaction(&store, client, deadline, taken, held).await,
            Err(e) => taken.answer(|_| Err(copy(&e))),
        }
    }
}

fn ids<W: Write>(entries: &[Entry<W>]) -> impl Iterator<Item = Uuid> + '_ {
    entries.iter().map(|entry| entry.write.order_id())
}

impl Taken {
    /// Answers every write, as `answer` says for its order.
    fn answer(self, answer: impl Fn(Uuid) -> Answer) {
        fn each<W: Write>(entries: Vec<Entry<W>>, answer: &impl Fn(Uuid) -> Answer) {
            for entry in entries {
                let _ = entry.answer.send(answer(entry.write.order_id()));
            }
        }
        each(self.new_orders, &answer);
        each(self.outcomes, &answer);
    }
}

/// Writes everything taken in one transaction (one commit, one flush of
/// the log for both kinds), or, if the server refused it, each write in a
/// statement of its own, in a task of its own (the runner goes on with
/// the queue meanwhile: a slow write holds up no other); and answers each
/// write.
async fn transaction(
    store: &PgStore,
    client: deadpool_postgres::Client,
    deadline: Instant,
    taken: Taken,
    held: Held,
) {
    match together(store, client, deadline, &taken).await {
        Ok(made) => taken.answer(|id| Ok(made.contains(&id))),
        Err(e) if !e.may_have_written() => {
            let store = store.clone();
            tokio::spawn(async move {
                tokio::join!(
                    alone(&store, deadline, taken.new_orders, &held),
                    alone(&store, deadline, taken.outcomes, &held)
                );
            });
        }
        Err(e) => taken.answer(|_| Err(copy(&e))),
    }
}

/// The orders `taken` wrote, in one transaction.
async fn together(
    store: &PgStore,
    client: deadpool_postgres::Client,
    deadline: Instant,
    taken: &Taken,
) -> Result<HashSet<Uuid>, StoreError> {
    let new_orders: Vec<&NewOrder> = taken.new_orders.iter().map(|e| &e.write).collect();
    let outcomes: Vec<&Outcome> = taken.outcomes.iter().map(|e| &e.write).collect();
    let statements = [statement(store, &new_orders), statement(store, &outcomes)];
    let bound: Vec<(&str, Vec<Param<'_>>)> = statements
        .iter()
        .flatten()
        .map(|(sql, params)| (*sql, refs(params)))
        .collect();
    let statements: Vec<(&str, &[Param<'_>])> = bound
        .iter()
        .map(|(sql, params)| (*sql, params.as_slice()))
        .collect();
    let rows = store.transact(client, deadline, &statements).await?;
    Ok(rows.iter().flatten().map(|row| row.get(0)).collect())
}

/// A statement's parameters, owned.
pub(super) type Params<'a> = Vec<Box<dyn ToSql + Sync + Send + 'a>>;

fn refs<'a>(params: &'a Params<'_>) -> Vec<Param<'a>> {
    params.iter().map(|p| p.as_ref() as _).collect()
}

/// The statement for `writes`, if there are any.
fn statement<'a, W: Write>(
    store: &PgStore,
    writes: &[&'a W],
) -> Option<(&'static str, Params<'a>)> {
    (!writes.is_empty()).then(|| (W::SQL, W::params(store, writes)))
}

/// Each write in a statement of its own, all at once, each answered as
/// soon as it is written: a slow one holds up no other.
async fn alone<W: Write>(store: &PgStore, deadline: Instant, entries: Vec<Entry<W>>, held: &Held) {
    let alone = entries.into_iter().map(|entry| async move {
        let params = W::params(store, &[&entry.write]);
        let rows = match store.connect(deadline).await {
            Ok(client) => store.run(client, deadline, W::SQL, &refs(&params)).await,
            Err(e) => Err(e),
        };
        let id = entry.write.order_id();
        let made = rows.map(|rows| rows.iter().any(|row| row.get::<_, Uuid>(0) == id));
        held.free(id);
        let _ = entry.answer.send(made);
    });
    futures_util::future::join_all(alone).await;
}

/// One transaction's failure, for each of its writes.
fn copy(e: &StoreError) -> StoreError {
    match e {
        StoreError::Uncertain(cause) => uncertain(cause.to_string()),
        StoreError::Unavailable(cause) => unavailable(cause.to_string()),
        other => unavailable(other.to_string()),
    }
}
