//! Group commit: the one thread that writes the log. Charges for new keys
//! queue here; the writer takes every charge waiting (up to a batch),
//! appends them with one write, syncs once, and only then makes them
//! visible and acknowledges each. Many charges share one sync, so a
//! durable ledger charges at nearly the speed of memory, and a SIGKILL
//! still loses no acknowledged charge: an acknowledgement follows the sync
//! that covers it.
//!
//! The queue is bounded: when the disk cannot keep up, a new charge is
//! refused at once (503 with Retry-After, nothing charged) instead of
//! growing memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use tokio::sync::watch;

use super::{Charge, LedgerLog, Shared};

/// Charges waiting for the writer, at most.
pub const QUEUE: usize = 4096;
/// Charges in one write and sync, at most.
pub const MAX_BATCH: usize = 512;

/// The outcome of a charge's write, once known: `Ok` after the sync,
/// `Err` (the I/O error's text) if the batch could not be written.
pub type Written = Option<Result<(), Arc<str>>>;

pub struct Write {
    pub charge: Charge,
    /// The charge's log line, made by the request (in parallel, on the
    /// workers) so that the one writer only copies it.
    pub line: Vec<u8>,
    pub done: watch::Sender<Written>,
}

/// Syncs and the charges they covered, since start (`/metrics`).
#[derive(Debug, Default)]
pub struct Stats {
    pub syncs: AtomicU64,
    pub synced_charges: AtomicU64,
}

pub struct Writer {
    queue: Option<SyncSender<Write>>,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<Stats>,
}

impl Writer {
    pub fn start(log: LedgerLog, shared: Arc<Shared>) -> std::io::Result<Self> {
        let (queue, receiver) = sync_channel(QUEUE);
        let stats = Arc::new(Stats::default());
        let counted = stats.clone();
        let thread = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || run(log, receiver, &shared, &counted))?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
            stats,
        })
    }

    /// Queues a write; refused (and handed back) when the queue is full.
    pub fn send(&self, write: Write) -> Result<(), Write> {
        let queue = self
            .queue
            .as_ref()
            .expect("queue open while the ledger lives");
        queue.try_send(write).map_err(|e| match e {
            TrySendError::Full(w) | TrySendError::Disconnected(w) => w,
        })
    }
}

impl Drop for Writer {
    /// Closes the queue, lets the writer finish what is queued, and waits
    /// for it: the log (and its lock) is closed when the ledger is dropped.
    fn drop(&mut self) {
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(mut log: LedgerLog, queue: Receiver<Write>, shared: &Shared, stats: &Stats) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let lines: Vec<&[u8]> = batch.iter().map(|w| w.line.as_slice()).collect();
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
        let (charges, done): (Vec<Charge>, Vec<_>) =
            batch.into_iter().map(|w| (w.charge, w.done)).unzip();
        // Visible (to a lookup, a replay, the audit) only after the sync,
        // in the log's order; then acknowledged.
        shared.settle_writes(charges, outcome.is_ok());
        for done in done {
            done.send_replace(Some(outcome.clone()));
        }
    }
}
