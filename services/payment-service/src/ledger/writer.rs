//! Group commit: the one thread that writes the log. Charges for new keys
//! queue here; the writer takes every charge waiting (up to a batch),
//! appends them with one write, syncs once, and only then makes them
//! visible and acknowledges each. Many charges share one sync, which
//! makes a durable charge cost a fraction of a sync, and a SIGKILL still
//! loses no acknowledged charge: an acknowledgement follows the sync that
//! covers it.
//!
//! The queue lives in the ledger's state, under the lock a request already
//! holds to check its key and mark it in flight, and the writer takes all
//! of it with one swap. The writer sleeps only when nothing is queued, and
//! the request that finds it asleep wakes it: while the writer is busy, a
//! charge costs its request no system call and no extra lock.
//!
//! A sync costs the machine far more than a charge: here (a 2-core
//! Firecracker VM) about 40 µs of CPU in the block layer and the
//! hypervisor, against a few µs to settle a charge. So under load the
//! writer waits a little before it syncs, like PostgreSQL's `commit_delay`:
//! until as many charges are queued as its last sync covered, or until the
//! first of them has waited the delay. The request that completes the
//! count wakes it. A lone client's syncs cover one charge each, so it never
//! waits, and a charge queued during a sync has waited already.
//!
//! The queue is bounded: when the disk cannot keep up, a new charge is
//! refused at once (503 with Retry-After, nothing charged) instead of
//! growing memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{Entry, LedgerLog, Shared};

/// Charges waiting for the writer, at most.
pub const QUEUE: usize = 4096;
/// Charges in one write and sync, at most.
pub const MAX_BATCH: usize = 512;

/// The outcome of a charge's write: `Ok` after the sync, `Err` (the I/O
/// error's text) if the batch could not be written.
pub type Written = Result<(), Arc<str>>;

pub struct Write {
    pub entry: Entry,
    /// The entry's log line, made by the request (in parallel, on the
    /// workers) so that the one writer only copies it.
    pub line: Vec<u8>,
    pub done: oneshot::Sender<Written>,
}

/// The charges waiting for the writer, kept in the ledger's state.
#[derive(Default)]
pub struct Queue {
    writes: Vec<Write>,
    /// When the first charge waiting was queued.
    since: Option<Instant>,
    /// The writer sleeps until a charge is queued.
    asleep: bool,
    /// The writer waits (its commit delay) until this many charges are
    /// queued; 0 when it does not.
    wake_at: usize,
    /// The writer has stopped (the ledger is closing, or it died): nothing
    /// more is queued.
    closed: bool,
}

impl Queue {
    /// Queues `write`, or hands it back when the queue is full or closed.
    /// `Ok(true)`: the writer sleeps, or waits for as many charges as are
    /// now queued, and the caller must [`Writer::wake`] it once the
    /// ledger's lock is released.
    pub fn push(&mut self, write: Write) -> Result<bool, Write> {
        if self.closed || self.writes.len() >= QUEUE {
            return Err(write);
        }
        if self.writes.is_empty() {
            self.since = Some(Instant::now());
        }
        self.writes.push(write);
        if self.wake_at > 0 && self.writes.len() >= self.wake_at {
            self.wake_at = 0;
            return Ok(true);
        }
        Ok(std::mem::take(&mut self.asleep))
    }
}

/// How long the writer may wait for more charges before a sync, and for
/// how many at most (`PAYMENT_LEDGER_COMMIT_DELAY_US`,
/// `PAYMENT_LEDGER_COMMIT_BATCH`).
#[derive(Debug, Clone, Copy)]
pub struct CommitDelay {
    pub wait: Duration,
    pub charges: usize,
}

impl CommitDelay {
    /// Never waits: each sync takes whatever is queued.
    pub const NONE: Self = Self {
        wait: Duration::ZERO,
        charges: 1,
    };

    /// The charges to wait for, after a sync that covered `last`.
    fn wanted(self, last: usize) -> usize {
        if self.wait.is_zero() {
            1
        } else {
            last.clamp(1, self.charges.clamp(1, MAX_BATCH))
        }
    }
}

/// Syncs and the charges they covered, since start (`/metrics`).
#[derive(Debug, Default)]
pub struct Stats {
    pub syncs: AtomicU64,
    pub synced_charges: AtomicU64,
}

pub struct Writer {
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    pub stats: Arc<Stats>,
}

impl Writer {
    pub fn start(log: LedgerLog, shared: Arc<Shared>, delay: CommitDelay) -> std::io::Result<Self> {
        let stats = Arc::new(Stats::default());
        let (counted, theirs) = (stats.clone(), shared.clone());
        let thread = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || run(log, &theirs, &counted, delay))?;
        Ok(Self {
            thread: Some(thread),
            shared,
            stats,
        })
    }

    /// Wakes the writer, which [`Queue::push`] found asleep.
    pub fn wake(&self) {
        if let Some(thread) = &self.thread {
            thread.thread().unpark();
        }
    }
}

impl Drop for Writer {
    /// Lets the writer finish what is queued, and waits for it: the log
    /// (and its lock) is closed when the ledger is dropped.
    fn drop(&mut self) {
        self.shared.lock().queue.closed = true;
        self.wake();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(mut log: LedgerLog, shared: &Shared, stats: &Stats, delay: CommitDelay) {
    let _stopped = Stopped(shared);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut acks = Vec::with_capacity(MAX_BATCH);
    let mut last = 1;
    while next(shared, &mut batch, delay.wanted(last), delay.wait) {
        last = batch.len();
        let lines: Vec<&[u8]> = batch.iter().map(|w: &Write| w.line.as_slice()).collect();
        let outcome = log.append(&lines).map_err(|e| {
            tracing::error!(error = %e, charges = lines.len(), "ledger write failed; nothing in it was charged");
            Arc::<str>::from(e.to_string())
        });
        if outcome.is_ok() {
            stats.syncs.fetch_add(1, Ordering::Relaxed);
            stats
                .synced_charges
                .fetch_add(lines.len() as u64, Ordering::Relaxed);
        }
        {
            // Visible (to a lookup, a replay, the audit) only after the
            // sync, in the log's order; then acknowledged.
            let mut state = shared.lock();
            for write in batch.drain(..) {
                state.settle(write.entry, &outcome);
                acks.push(write.done);
            }
        }
        for done in acks.drain(..) {
            // Its request may be gone (the client hung up): the charge
            // stands all the same, and its key replays it.
            let _ = done.send(outcome.clone());
        }
    }
}

/// Waits for charges and moves up to a batch of them into `batch` (empty):
/// `wanted` of them, or what is queued once `wait` is over. False once the
/// ledger is closing and nothing is left to write.
fn next(shared: &Shared, batch: &mut Vec<Write>, wanted: usize, wait: Duration) -> bool {
    let mut state = shared.lock();
    loop {
        let queue = &mut state.queue;
        if queue.writes.len() > MAX_BATCH {
            queue.wake_at = 0;
            // The rest have waited at least this long: they wait no more.
            batch.extend(queue.writes.drain(..MAX_BATCH));
            return true;
        }
        if let Some(since) = queue.since {
            // The delay counts from the first charge's arrival: charges
            // that waited through the last sync wait no longer.
            let waited = since.elapsed();
            if waited >= wait || queue.writes.len() >= wanted || queue.closed {
                queue.wake_at = 0;
                queue.since = None;
                // The queue gets the emptied batch, and keeps its capacity.
                std::mem::swap(&mut queue.writes, batch);
                return true;
            }
            queue.wake_at = wanted;
            drop(state);
            std::thread::park_timeout(wait - waited);
        } else if queue.closed {
            return false;
        } else {
            queue.asleep = true;
            drop(state);
            std::thread::park();
        }
        state = shared.lock();
    }
}

/// However the writer stops (even by a panic), nothing waits for it: the
/// queue is closed, and every request still waiting is told it failed.
struct Stopped<'a>(&'a Shared);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.queue.closed = true;
        state.queue.writes.clear();
        state.writing.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Charge;
    use crate::ledger::tests::{key, request};

    fn write(n: usize) -> (Write, oneshot::Receiver<Written>) {
        let (done, written) = oneshot::channel();
        let entry = Entry::Charge(Charge::new(key(&format!("k{n}")), &request("1.00")));
        let write = Write {
            line: LedgerLog::line(&entry).unwrap(),
            entry,
            done,
        };
        (write, written)
    }

    /// Only the first charge queued after the writer fell asleep wakes it;
    /// a full queue and a closed one hand the charge back.
    #[test]
    fn the_queue_wakes_a_sleeping_writer_once_and_refuses_when_full_or_closed() {
        let mut queue = Queue::default();
        assert_eq!(queue.push(write(0).0).ok(), Some(false), "writer busy");
        queue.asleep = true;
        assert_eq!(queue.push(write(1).0).ok(), Some(true), "wake it");
        assert_eq!(queue.push(write(2).0).ok(), Some(false), "already woken");
        for n in 3..QUEUE {
            assert!(queue.push(write(n).0).is_ok());
        }
        let refused = queue.push(write(QUEUE).0).expect_err("full");
        assert_eq!(refused.entry.key().as_str(), format!("k{QUEUE}"));
        queue.writes.clear();
        queue.closed = true;
        assert!(queue.push(write(0).0).is_err(), "closed");
    }

    /// A writer waiting for its commit delay is woken by the charge that
    /// completes the count it waits for, and by no other.
    #[test]
    fn a_waiting_writer_is_woken_by_the_charge_that_completes_its_count() {
        let mut queue = Queue::default();
        assert_eq!(queue.push(write(0).0).ok(), Some(false));
        let first = queue.since.expect("the first charge's arrival is kept");
        queue.wake_at = 3;
        assert_eq!(queue.push(write(1).0).ok(), Some(false));
        assert_eq!(queue.since, Some(first), "counted from the first");
        assert_eq!(queue.push(write(2).0).ok(), Some(true), "three queued");
        assert_eq!(queue.push(write(3).0).ok(), Some(false), "woken once");
    }

    #[test]
    fn the_writer_waits_for_as_many_as_its_last_sync_covered_within_bounds() {
        let delay = CommitDelay {
            wait: Duration::from_micros(100),
            charges: 32,
        };
        assert_eq!(delay.wanted(1), 1, "a lone client never waits");
        assert_eq!(delay.wanted(10), 10);
        assert_eq!(delay.wanted(400), 32);
        assert_eq!(CommitDelay::NONE.wanted(10), 1);
        let huge = CommitDelay {
            charges: 10_000,
            ..delay
        };
        assert_eq!(huge.wanted(10_000), MAX_BATCH);
    }

    /// A writer that stops, however, fails every request still waiting:
    /// the queued ones and those waiting on a key in flight.
    #[test]
    fn a_stopped_writer_fails_what_waits_for_it() {
        let shared = Shared {
            state: std::sync::Mutex::new(Default::default()),
        };
        let (queued, mut queued_outcome) = write(0);
        let (waiter, mut waiter_outcome) = oneshot::channel();
        {
            let mut state = shared.lock();
            state.queue.push(queued).ok().unwrap();
            state.writing.insert(key("k0"), vec![waiter]);
        }
        drop(Stopped(&shared));
        use oneshot::error::TryRecvError::Closed;
        assert!(matches!(queued_outcome.try_recv(), Err(Closed)));
        assert!(matches!(waiter_outcome.try_recv(), Err(Closed)));
        let state = shared.lock();
        assert!(state.queue.closed && state.writing.is_empty());
    }
}
