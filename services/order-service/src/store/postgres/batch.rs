//! Group commit across requests. Every order writes twice (its `pending`
//! row, then its outcome), and each write alone costs a round trip and a
//! commit, whose flush is most of the database's time. Here a write waits
//! in a queue while earlier statements of its kind are under way, and the
//! next statement takes everything queued: one round trip and one commit
//! for many orders (docs/postgres-path.md has the figures). With nothing
//! under way a write goes at once, alone, so a quiet service waits for
//! nothing.
//!
//! What a write's caller is told stays true:
//! - a write its caller gave up on (timed out, or dropped) before a
//!   statement took it is never sent: the caller said nothing was written;
//! - a taken write shares its statement's fate: committed, refused, or
//!   uncertain (no answer, or none in time) for all of them;
//! - a statement the server refused (an `ERROR`, all of it rolled back:
//!   a bad row, a deadlock) is tried again with each write alone, so that
//!   one write cannot fail the others.
//!
//! No statement holds two writes of one order, and no two statements in
//! flight here hold one order: `UPDATE … FROM` would apply one of two
//! rows for the same target, unpredictably. The runners are tasks of their
//! own, so a request that goes away takes nobody's statement with it. A
//! runner runs on the runtime of the write that started it (an HTTP
//! worker's, mostly: a runner on a thread of its own cost order-service
//! 10–15 % more CPU per order); if that runtime stops while its
//! statement is under way, the statement's writes are uncertain, as for a
//! broken connection, and the next write starts a runner elsewhere.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::{LATE, PgStore, unavailable, uncertain};
use crate::store::StoreError;

/// A write that can share its statement with others of its kind.
pub(super) trait Write: Send + Sync + Sized + 'static {
    /// The statement: binds [`Write::params`] and returns the order id of
    /// every write it made.
    const SQL: &'static str;

    /// The queue this kind of write waits in.
    fn batcher(store: &PgStore) -> &Batcher<Self>;

    /// The order the write is for.
    fn order_id(&self) -> Uuid;

    /// The statement's parameters for `writes`, in their order.
    fn params<'a>(store: &PgStore, writes: &[&'a Self]) -> Vec<Box<dyn ToSql + Sync + Send + 'a>>;
}

const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const CANCELLED: u8 = 2;

type Answer = Result<bool, StoreError>;

struct Entry<W> {
    write: W,
    state: Arc<AtomicU8>,
    answer: oneshot::Sender<Answer>,
}

struct Queue<W> {
    entries: VecDeque<Entry<W>>,
    /// Runner tasks alive.
    runners: usize,
    /// Orders in a statement under way.
    busy: HashSet<Uuid>,
}

/// One kind of write's queue and its runners.
pub(super) struct Batcher<W> {
    queue: Mutex<Queue<W>>,
    max_writes: usize,
    max_runners: usize,
}

impl<W: Write> Batcher<W> {
    /// At most `max_writes` writes per statement and `max_runners`
    /// statements under way at once.
    pub(super) fn new(max_writes: usize, max_runners: usize) -> Self {
        Self {
            queue: Mutex::new(Queue {
                entries: VecDeque::new(),
                runners: 0,
                busy: HashSet::new(),
            }),
            max_writes: max_writes.max(1),
            max_runners: max_runners.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue<W>> {
        // A panic elsewhere cannot leave the queue half-changed: every
        // change under the lock is one push, pop or set operation.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes at most `limit` writes, oldest first: none whose caller gave
    /// up, none for an order already taken. Retires the runner (and
    /// answers `None`) when nothing is left to take.
    fn take(&self, limit: usize) -> Option<Vec<Entry<W>>> {
        let mut queue = self.lock();
        let mut taken: Vec<Entry<W>> = Vec::new();
        let mut left = VecDeque::new();
        while taken.len() < limit {
            let Some(entry) = queue.entries.pop_front() else {
                break;
            };
            let id = entry.write.order_id();
            if entry.answer.is_closed() {
                entry.state.store(CANCELLED, Ordering::Release);
            } else if queue.busy.contains(&id) {
                left.push_back(entry);
            } else if entry
                .state
                .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                queue.busy.insert(id);
                taken.push(entry);
            }
        }
        while let Some(entry) = left.pop_back() {
            queue.entries.push_front(entry);
        }
        if taken.is_empty() {
            queue.runners -= 1;
            return None;
        }
        Some(taken)
    }
}

impl<W> Queue<W> {
    /// Frees the orders of a statement that has ended.
    fn release(&mut self, orders: &[Uuid]) {
        for id in orders {
            self.busy.remove(id);
        }
    }
}

/// Writes `write` in a statement shared with others of its kind; answers
/// whether it was made (false: a row it conflicts with stands, as the
/// statement's own conditions say), or why not, as [`PgStore::query`]
/// would for a statement of its own.
pub(super) async fn write<W: Write>(store: &PgStore, write: W) -> Answer {
    let deadline = Instant::now() + store.settings().statement_timeout;
    let (answer, answered) = oneshot::channel();
    let state = Arc::new(AtomicU8::new(QUEUED));
    let batcher = W::batcher(store);
    let start = {
        let mut queue = batcher.lock();
        queue.entries.push_back(Entry {
            write,
            state: state.clone(),
            answer,
        });
        let start = queue.runners < batcher.max_runners;
        queue.runners += usize::from(start);
        start
    };
    if start {
        // The place is taken before the spawn: if the task never runs,
        // dropping it still gives the place back.
        let running = Running::<W> {
            store: store.clone(),
            retired: false,
            busy: Vec::new(),
            _write: std::marker::PhantomData,
        };
        tokio::spawn(run(running));
    }
    match tokio::time::timeout_at(deadline, answered).await {
        Ok(Ok(answer)) => answer,
        // Too late, or the runner's runtime is gone: the write is
        // withdrawn if no statement took it yet.
        Ok(Err(_)) | Err(_) => {
            match state.compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => Err(unavailable(LATE)),
                Err(_) => Err(uncertain(LATE)),
            }
        }
    }
}

/// A runner's place: counted out, and the orders of its statement freed,
/// however the runner ends (returns, panics, or is dropped by its runtime,
/// started or not).
struct Running<W: Write> {
    store: PgStore,
    retired: bool,
    busy: Vec<Uuid>,
    _write: std::marker::PhantomData<fn() -> W>,
}

impl<W: Write> Drop for Running<W> {
    fn drop(&mut self) {
        let batcher = W::batcher(&self.store);
        let mut queue = batcher.lock();
        queue.release(&self.busy);
        if !self.retired {
            queue.runners -= 1;
        }
    }
}

/// A runner: a connection first (writes wait in the queue meanwhile, and
/// can still be withdrawn), then everything queued, one statement, the
/// answers; until the queue is empty.
async fn run<W: Write>(mut running: Running<W>) {
    let store = running.store.clone();
    let batcher = W::batcher(&store);
    loop {
        let deadline = Instant::now() + store.settings().statement_timeout;
        let client = store.connect(deadline).await;
        // Without a connection nothing is sent: every write queued now
        // hears so at once, not only a statement's worth.
        let limit = match client {
            Ok(_) => batcher.max_writes,
            Err(_) => usize::MAX,
        };
        let Some(mut taken) = batcher.take(limit) else {
            running.retired = true;
            return;
        };
        // One order of rows for every statement: two statements lock
        // shared rows in the same order and cannot deadlock on them.
        taken.sort_by_key(|entry| entry.write.order_id());
        running.busy = taken.iter().map(|e| e.write.order_id()).collect();
        let answers = match client {
            Ok(client) => statement(&store, client, deadline, &taken).await,
            Err(e) => taken.iter().map(|_| Err(copy(&e))).collect(),
        };
        batcher.lock().release(&std::mem::take(&mut running.busy));
        for (entry, answer) in taken.into_iter().zip(answers) {
            let _ = entry.answer.send(answer);
        }
    }
}

/// Runs the statement for `taken`, or, if the server refused it whole,
/// one statement per write.
async fn statement<W: Write>(
    store: &PgStore,
    client: deadpool_postgres::Client,
    deadline: Instant,
    taken: &[Entry<W>],
) -> Vec<Answer> {
    let writes: Vec<&W> = taken.iter().map(|entry| &entry.write).collect();
    match once(store, client, deadline, &writes).await {
        Ok(made) => writes
            .iter()
            .map(|w| Ok(made.contains(&w.order_id())))
            .collect(),
        Err(e) if writes.len() > 1 && !e.may_have_written() => {
            let mut answers = Vec::with_capacity(writes.len());
            for write in &writes {
                let alone = match store.connect(deadline).await {
                    Ok(client) => once(store, client, deadline, &[*write]).await,
                    Err(e) => Err(e),
                };
                answers.push(alone.map(|made| made.contains(&write.order_id())));
            }
            answers
        }
        Err(e) => writes.iter().map(|_| Err(copy(&e))).collect(),
    }
}

async fn once<W: Write>(
    store: &PgStore,
    client: deadpool_postgres::Client,
    deadline: Instant,
    writes: &[&W],
) -> Result<HashSet<Uuid>, StoreError> {
    let params = W::params(store, writes);
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as _).collect();
    let rows = store.run(client, deadline, W::SQL, &refs).await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// One statement's failure, for each of its writes.
fn copy(e: &StoreError) -> StoreError {
    match e {
        StoreError::Uncertain(cause) => uncertain(cause.to_string()),
        StoreError::Unavailable(cause) => unavailable(cause.to_string()),
        other => unavailable(other.to_string()),
    }
}
