//! The charge ledger: one charge per `Idempotency-Key`, ever — or a void,
//! the promise of none ([`entry`]).
//!
//! The check "how did this key end?" and the reservation of a new charge
//! (or void) happen under one lock, so two concurrent requests with the
//! same key produce one charge and one replay: a key being written is "in
//! flight", and a second request for it waits for the same sync, then
//! replays. With a log, entries are appended and synced by one writer in
//! batches (group commit, [`writer`]), each *before* it is visible or
//! acknowledged: an acknowledged charge or void survives a SIGKILL, and
//! one that was never acknowledged may survive too, which is harmless
//! because its key replays it.

mod entry;
mod log;
mod writer;

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use common::domain::{IdempotencyKey, OrderId};
use serde::{Deserialize, Serialize};

pub use entry::{Charge, ChargeRequest, ChargeStatus, Entry, KeyEnd, Void};
pub use log::{LedgerLog, Replay};
use tokio::sync::oneshot;
pub use writer::CommitDelay;
pub use writer::Stats as WriteStats;
use writer::{Queue, Write, Writer, Written};

#[derive(Debug)]
pub enum Recorded {
    /// Charged now.
    New(Charge),
    /// Charged before, for the same body: the original charge.
    Existing(Charge),
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("idempotency key already used for a different charge")]
    KeyReused { existing: Box<Charge> },
    /// The key was voided: it is never charged.
    #[error("idempotency key voided")]
    Voided,
    #[error("could not write the ledger log")]
    Io(#[from] io::Error),
    /// The writer's queue is full: the disk is not keeping up. Nothing was
    /// charged.
    #[error("the ledger's write queue is full")]
    Busy,
}

/// Read by `GET /ledger`: enough to audit a run for double charges.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Audit {
    /// `POST /charge` requests received since start (set by the route).
    #[serde(default)]
    pub requests: u64,
    pub charges: usize,
    /// Keys charged.
    pub keys: usize,
    /// Keys voided: never to be charged.
    #[serde(default)]
    pub voids: usize,
    /// Orders charged more than once (under different keys). Must stay empty.
    pub duplicates: Vec<Duplicate>,
    /// What the start-up replay of the log found.
    pub replay: ReplaySummary,
    /// One page of charges in the ledger's order, only with `?detail=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<Vec<Charge>>,
    /// Where the next page starts (`?detail=true&after=N`); absent on the
    /// last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Duplicate {
    pub order_id: OrderId,
    pub transaction_ids: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplaySummary {
    pub durable: bool,
    pub replayed: usize,
    /// Bytes of a torn last line dropped at start-up (a crash mid-append).
    pub torn_tail_bytes: usize,
    /// Lines whose key an earlier line had charged (each also listed in
    /// `duplicates`). Must stay 0.
    #[serde(default)]
    pub repeated_keys: usize,
}

pub struct Ledger {
    shared: Arc<Shared>,
    /// With a log: the one thread that appends and syncs it.
    writer: Option<Writer>,
    replay: ReplaySummary,
}

/// What the requests and the writer share.
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-made charge:
        // the state only changes after the log write succeeded.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A page of `GET /ledger?detail=true`: the charges after the first `after`
/// ones, in the ledger's order, at most `limit` of them.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub after: usize,
    pub limit: usize,
}

/// Kept so that the audit costs the lock only O(duplicates + page): a full
/// scan under the lock would stall every charge behind it, which is how a
/// read flood used to trip order-service's breaker.
#[derive(Default)]
struct State {
    /// Every charge, in the log's order.
    charges: Vec<Charge>,
    /// Key → the charge replayed for it (the first under that key).
    by_key: HashMap<IdempotencyKey, usize>,
    /// Keys voided, none of them charged.
    voids: HashMap<IdempotencyKey, Void>,
    /// Order → its first charge.
    by_order: HashMap<OrderId, usize>,
    /// Orders charged more than once → their later charges. Must stay empty.
    duplicated: BTreeMap<OrderId, Vec<usize>>,
    /// Lines of the log whose key an earlier line already ended: only two
    /// processes writing one log make them. The first line is the key's
    /// end; later charges stay in `charges` so the audit shows them.
    repeated: usize,
    /// Keys whose entry the writer has not synced yet, each with the
    /// requests for the same key that wait for that sync.
    writing: HashMap<IdempotencyKey, Vec<oneshot::Sender<Written>>>,
    /// Entries for the writer, queued under this lock.
    queue: Queue,
}

impl State {
    fn push(&mut self, entry: Entry) {
        let ended = self.end_of(entry.key()).is_some();
        if ended {
            self.repeated += 1;
        }
        let charge = match entry {
            Entry::Void(void) => {
                if !ended {
                    self.voids.insert(void.idempotency_key.clone(), void);
                }
                return;
            }
            Entry::Charge(charge) => charge,
        };
        let at = self.charges.len();
        if !ended {
            self.by_key.insert(charge.idempotency_key.clone(), at);
        }
        match self.by_order.entry(charge.order_id) {
            MapEntry::Vacant(slot) => {
                slot.insert(at);
            }
            MapEntry::Occupied(_) => self.duplicated.entry(charge.order_id).or_default().push(at),
        }
        self.charges.push(charge);
    }

    fn by_key(&self, key: &IdempotencyKey) -> Option<&Charge> {
        self.by_key.get(key).map(|&at| &self.charges[at])
    }

    /// How `key` ended, if it did.
    fn end_of(&self, key: &IdempotencyKey) -> Option<KeyEnd> {
        if let Some(charge) = self.by_key(key) {
            return Some(KeyEnd::Charged {
                charge: charge.clone(),
            });
        }
        self.voids
            .get(key)
            .map(|void| KeyEnd::Voided { void: void.clone() })
    }

    /// The writer's report on an entry: its key is no longer in flight,
    /// and the entry, if synced, is the ledger's.
    fn settle(&mut self, entry: Entry, outcome: &Written) {
        for waiter in self.writing.remove(entry.key()).unwrap_or_default() {
            let _ = waiter.send(outcome.clone());
        }
        if outcome.is_ok() {
            self.push(entry);
        }
    }
}

/// What `end` waits for, out of the lock.
enum Wait {
    /// This request's entry, being written.
    Own(oneshot::Receiver<Written>, Entry),
    /// Another request's entry under the same key, being written.
    Other(oneshot::Receiver<Written>),
}

/// How [`Ledger::end`] found the key.
enum Ended {
    /// Ended now, by the entry given.
    Now(Entry),
    /// Ended before.
    Before(KeyEnd),
}

impl Ledger {
    pub fn in_memory() -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
            }),
            writer: None,
            replay: ReplaySummary::default(),
        }
    }

    /// Opens (or creates) the log at `path` and replays it. A torn last line
    /// is dropped and reported; any other unreadable line is an error, since
    /// guessing would risk forgetting a charge.
    pub fn open(path: &Path, delay: CommitDelay) -> io::Result<Self> {
        let (log, replay) = LedgerLog::open(path)?;
        let replayed = replay.entries.len();
        let mut state = State {
            charges: Vec::with_capacity(replayed),
            ..State::default()
        };
        for entry in replay.entries {
            if state.end_of(entry.key()).is_some() {
                tracing::error!(
                    idempotency.key = %entry.key(),
                    "the ledger ended one key twice (two processes on one log?)"
                );
            }
            state.push(entry);
        }
        let repeated_keys = state.repeated;
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
        });
        Ok(Self {
            writer: Some(Writer::start(log, shared.clone(), delay)?),
            shared,
            replay: ReplaySummary {
                durable: true,
                replayed,
                torn_tail_bytes: replay.torn_tail_bytes,
                repeated_keys,
            },
        })
    }

    pub fn replay_summary(&self) -> ReplaySummary {
        self.replay
    }

    pub fn lookup(&self, key: &IdempotencyKey) -> Option<Charge> {
        self.lock().by_key(key).cloned()
    }

    /// How `key` ended, if it did: charged, or voided.
    pub fn end_of(&self, key: &IdempotencyKey) -> Option<KeyEnd> {
        self.lock().end_of(key)
    }

    /// Charges in the ledger.
    pub fn charges(&self) -> usize {
        self.lock().charges.len()
    }

    /// The writer's syncs so far; none in memory.
    pub fn write_stats(&self) -> Option<&WriteStats> {
        self.writer.as_ref().map(|w| &*w.stats)
    }

    /// Charges `request` under `key` unless the key already ended: then the
    /// original charge (`KeyReused` for another body), or `Voided`. With a
    /// log, answers once the sync that covers the charge is done. Dropping
    /// the future changes nothing: a queued charge is written all the same,
    /// and its key replays it.
    pub async fn record(
        &self,
        key: IdempotencyKey,
        request: &ChargeRequest,
    ) -> Result<Recorded, LedgerError> {
        let ended = self
            .end(&key, || Entry::Charge(Charge::new(key.clone(), request)))
            .await?;
        match ended {
            Ended::Now(Entry::Charge(charge)) => Ok(Recorded::New(charge)),
            Ended::Before(KeyEnd::Charged { charge }) if charge.matches(request) => {
                Ok(Recorded::Existing(charge))
            }
            Ended::Before(KeyEnd::Charged { charge }) => Err(LedgerError::KeyReused {
                existing: Box::new(charge),
            }),
            Ended::Now(Entry::Void(_)) | Ended::Before(KeyEnd::Voided { .. }) => {
                Err(LedgerError::Voided)
            }
        }
    }

    /// Voids `key` unless it is charged; answers how the key ended. Durable
    /// before it answers, like a charge: once voided, no request under the
    /// key, however late it arrives, is charged.
    pub async fn void(&self, key: IdempotencyKey) -> Result<KeyEnd, LedgerError> {
        Ok(
            match self
                .end(&key, || Entry::Void(Void::new(key.clone())))
                .await?
            {
                Ended::Now(Entry::Void(void)) => KeyEnd::Voided { void },
                Ended::Now(Entry::Charge(charge)) => KeyEnd::Charged { charge },
                Ended::Before(end) => end,
            },
        )
    }

    /// Ends `key` with `entry()` unless it ended before. The check, the
    /// mark "in flight" and the queueing are one step under the lock; a
    /// request that finds the key in flight waits for that write and looks
    /// again.
    async fn end(
        &self,
        key: &IdempotencyKey,
        entry: impl Fn() -> Entry,
    ) -> Result<Ended, LedgerError> {
        loop {
            // Made before the lock, which serializes every entry: a
            // transaction id and the log line cost nothing to throw away.
            let entry = entry();
            let line = match &self.writer {
                Some(_) => LedgerLog::line(&entry)?,
                None => Vec::new(),
            };
            let (wait, wake) = {
                let mut state = self.lock();
                if let Some(end) = state.end_of(key) {
                    return Ok(Ended::Before(end));
                }
                let Some(writer) = &self.writer else {
                    state.push(entry.clone());
                    return Ok(Ended::Now(entry));
                };
                let (done, written) = oneshot::channel();
                if let Some(waiters) = state.writing.get_mut(key) {
                    waiters.push(done);
                    (Wait::Other(written), None)
                } else {
                    // Queued under the lock: the writer settles it only
                    // after it is marked in flight here.
                    let write = Write {
                        entry: entry.clone(),
                        line,
                        done,
                    };
                    let Ok(wake) = state.queue.push(write) else {
                        return Err(LedgerError::Busy);
                    };
                    state.writing.insert(key.clone(), Vec::new());
                    (Wait::Own(written, entry), wake.then_some(writer))
                }
            };
            // Out of the lock: the writer takes it as soon as it wakes.
            if let Some(writer) = wake {
                writer.wake();
            }
            match wait {
                Wait::Own(written, entry) => {
                    outcome(written).await?;
                    return Ok(Ended::Now(entry));
                }
                // Ended by the other request now: look again, to answer
                // how. Its write failed: so would this one's (no loop on a
                // writer that is gone).
                Wait::Other(written) => outcome(written).await?,
            }
        }
    }

    /// The counts and the duplicates, plus one page of charges if asked.
    pub fn audit(&self, page: Option<Page>) -> Audit {
        let state = self.lock();
        let duplicates = state
            .duplicated
            .iter()
            .map(|(&order_id, later)| Duplicate {
                order_id,
                transaction_ids: std::iter::once(state.by_order[&order_id])
                    .chain(later.iter().copied())
                    .map(|at| state.charges[at].transaction_id.clone())
                    .collect(),
            })
            .collect();
        let (entries, next_cursor) = match page {
            Some(Page { after, limit }) => {
                let from = after.min(state.charges.len());
                let to = from.saturating_add(limit).min(state.charges.len());
                let next = (to < state.charges.len()).then_some(to);
                (Some(state.charges[from..to].to_vec()), next)
            }
            None => (None, None),
        };
        Audit {
            requests: 0,
            charges: state.charges.len(),
            keys: state.by_key.len(),
            voids: state.voids.len(),
            duplicates,
            replay: self.replay,
            entries,
            next_cursor,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.lock()
    }
}

/// What the writer said of a charge: its sync, or why it failed.
async fn outcome(written: oneshot::Receiver<Written>) -> Result<(), LedgerError> {
    let failed = |e: &str| LedgerError::Io(io::Error::other(e.to_owned()));
    match written.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(failed(&e)),
        Err(_) => Err(failed("the ledger writer stopped")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::domain::PaymentDetails;
    use serde_json::value::RawValue;

    pub(crate) fn request(amount: &str) -> ChargeRequest {
        let raw = |s: &str| Some(RawValue::from_string(s.to_owned()).unwrap());
        ChargeRequest {
            order_id: OrderId::new(),
            details: PaymentDetails::parse(&raw(r#""m_1""#), &raw(amount), &raw(r#""USD""#))
                .unwrap(),
        }
    }

    pub(crate) fn key(k: &str) -> IdempotencyKey {
        IdempotencyKey::parse(k).unwrap()
    }

    #[tokio::test]
    async fn same_key_same_body_is_charged_once() {
        let ledger = Ledger::in_memory();
        let req = request("10.00");
        let Recorded::New(first) = ledger.record(key("k"), &req).await.unwrap() else {
            panic!("first charge must be new")
        };
        let Recorded::Existing(again) = ledger.record(key("k"), &req).await.unwrap() else {
            panic!("second charge must replay")
        };
        assert_eq!(first, again);
        assert_eq!(ledger.audit(None).charges, 1);
    }

    #[tokio::test]
    async fn a_voided_key_is_never_charged_and_a_charged_key_is_never_voided() {
        let ledger = Ledger::in_memory();
        let KeyEnd::Voided { void } = ledger.void(key("v")).await.unwrap() else {
            panic!("a new key is voided")
        };
        assert!(matches!(
            ledger.record(key("v"), &request("1.00")).await,
            Err(LedgerError::Voided)
        ));
        assert_eq!(
            ledger.void(key("v")).await.unwrap(),
            KeyEnd::Voided { void },
            "a second void answers the first"
        );
        let Recorded::New(charge) = ledger.record(key("c"), &request("1.00")).await.unwrap() else {
            panic!("a new key is charged")
        };
        assert_eq!(
            ledger.void(key("c")).await.unwrap(),
            KeyEnd::Charged { charge },
            "the charge stands"
        );
        let audit = ledger.audit(None);
        assert_eq!((audit.charges, audit.keys, audit.voids), (1, 1, 1));
    }

    /// A charge and a void racing for one key: exactly one of them is the
    /// key's end, and everyone is told the same end — the write in flight
    /// is waited for, never overtaken.
    #[tokio::test(flavor = "current_thread")]
    async fn a_charge_and_a_void_racing_for_a_key_agree_on_one_end() {
        let dir = tempfile::tempdir().unwrap();
        let delay = CommitDelay {
            wait: std::time::Duration::from_micros(200),
            charges: 8,
        };
        let ledger = Arc::new(Ledger::open(&dir.path().join("ledger.jsonl"), delay).unwrap());
        let req = request("2.00");
        for round in 0..50 {
            let k = key(&format!("race-{round}"));
            let (charged, voided) = tokio::join!(
                {
                    let (ledger, k, req) = (ledger.clone(), k.clone(), req.clone());
                    tokio::spawn(async move { ledger.record(k, &req).await })
                },
                {
                    let (ledger, k) = (ledger.clone(), k.clone());
                    tokio::spawn(async move { ledger.void(k).await })
                },
            );
            match (charged.unwrap(), voided.unwrap().unwrap()) {
                (Ok(Recorded::New(charge)), KeyEnd::Charged { charge: seen }) => {
                    assert_eq!(charge, seen)
                }
                (Err(LedgerError::Voided), KeyEnd::Voided { .. }) => {}
                (charged, voided) => panic!("{round}: {charged:?} against {voided:?}"),
            }
            assert!(ledger.end_of(&k).is_some());
        }
        let audit = ledger.audit(None);
        assert_eq!(audit.charges + audit.voids, 50);
    }

    /// Voids are lines of the log: a reopened ledger still refuses the
    /// key, and a log written before voids existed replays unchanged.
    #[tokio::test]
    async fn a_void_survives_a_reopen_beside_the_charges() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        {
            let ledger = Ledger::open(&path, CommitDelay::NONE).unwrap();
            ledger.record(key("c"), &request("1.00")).await.unwrap();
            ledger.void(key("v")).await.unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].starts_with(r#"{"transaction_id":"#),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with(r#"{"idempotency_key":"v""#),
            "{}",
            lines[1]
        );
        let ledger = Ledger::open(&path, CommitDelay::NONE).unwrap();
        assert_eq!(ledger.replay_summary().replayed, 2);
        assert!(matches!(
            ledger.record(key("v"), &request("1.00")).await,
            Err(LedgerError::Voided)
        ));
        assert!(matches!(
            ledger.end_of(&key("c")),
            Some(KeyEnd::Charged { .. })
        ));
    }

    #[tokio::test]
    async fn same_key_different_body_is_refused() {
        let ledger = Ledger::in_memory();
        ledger.record(key("k"), &request("10.00")).await.unwrap();
        assert!(matches!(
            ledger.record(key("k"), &request("10.00")).await,
            Err(LedgerError::KeyReused { .. })
        ));
    }

    #[tokio::test]
    async fn audit_lists_orders_charged_under_two_keys() {
        let ledger = Ledger::in_memory();
        let req = request("1.00");
        ledger.record(key("a"), &req).await.unwrap();
        ledger.record(key("b"), &req).await.unwrap();
        let audit = ledger.audit(Some(Page {
            after: 0,
            limit: 10,
        }));
        assert_eq!(audit.charges, 2);
        assert_eq!(audit.duplicates.len(), 1);
        assert_eq!(audit.duplicates[0].order_id, req.order_id);
        assert_eq!(audit.entries.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn durable_ledger_survives_reopen_and_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let req = request("12.34");
        let first = {
            let ledger = Ledger::open(&path, CommitDelay::NONE).unwrap();
            match ledger.record(key("k1"), &req).await.unwrap() {
                Recorded::New(c) => c,
                other => panic!("{other:?}"),
            }
        };
        // A crash in the middle of the next append.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"transaction_id\":\"tx"))
            .unwrap();

        let ledger = Ledger::open(&path, CommitDelay::NONE).unwrap();
        let summary = ledger.replay_summary();
        assert_eq!(summary.replayed, 1);
        assert_eq!(summary.torn_tail_bytes, 21);
        assert_eq!(ledger.lookup(&key("k1")), Some(first));
        ledger.record(key("k2"), &request("1.00")).await.unwrap();
        drop(ledger);

        let ledger = Ledger::open(&path, CommitDelay::NONE).unwrap();
        assert_eq!(ledger.replay_summary().replayed, 2);
        assert_eq!(ledger.replay_summary().torn_tail_bytes, 0);
    }

    /// Many charges at once share syncs; each is acknowledged (and visible)
    /// only once synced; concurrent requests under one key make one charge,
    /// whatever batch each lands in; and a reopen replays exactly them.
    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_charges_share_syncs_and_one_key_is_charged_once() {
        concurrent_charges(CommitDelay::NONE).await;
    }

    /// The same with a commit delay: the writer waits for more charges.
    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_charges_with_a_commit_delay_share_syncs_and_one_key_is_charged_once() {
        concurrent_charges(CommitDelay {
            wait: std::time::Duration::from_micros(500),
            charges: 32,
        })
        .await;
    }

    /// A lone client's charges never wait for others, however long the
    /// delay: each sync covers its one charge, so the writer wants one.
    #[tokio::test]
    async fn a_lone_client_never_waits_for_the_commit_delay() {
        let dir = tempfile::tempdir().unwrap();
        let delay = CommitDelay {
            wait: std::time::Duration::from_secs(3600),
            charges: 32,
        };
        let ledger = Ledger::open(&dir.path().join("ledger.jsonl"), delay).unwrap();
        let req = request("1.00");
        for i in 0..20 {
            let charged = ledger.record(key(&format!("k{i}")), &req);
            let charged = tokio::time::timeout(std::time::Duration::from_secs(30), charged)
                .await
                .expect("answered without waiting for the hour-long delay");
            assert!(matches!(charged, Ok(Recorded::New(_))));
        }
    }

    async fn concurrent_charges(delay: CommitDelay) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let ledger = Arc::new(Ledger::open(&path, delay).unwrap());
        let shared = request("3.00");
        let mut tasks = Vec::new();
        for i in 0..400 {
            let ledger = ledger.clone();
            let (k, req) = if i % 4 == 0 {
                (key("same"), shared.clone())
            } else {
                (key(&format!("k{i}")), request("1.00"))
            };
            tasks.push(tokio::spawn(async move {
                let recorded = ledger.record(k.clone(), &req).await.unwrap();
                // Acknowledged: the charge is already visible.
                assert!(ledger.lookup(&k).is_some());
                recorded
            }));
        }
        let results = futures_util::future::join_all(tasks).await;
        let (mut new, mut same_txn) = (0, std::collections::HashSet::new());
        for recorded in results {
            match recorded.unwrap() {
                Recorded::New(c) if c.idempotency_key.as_str() == "same" => {
                    new += 1;
                    same_txn.insert(c.transaction_id);
                }
                Recorded::Existing(c) => {
                    same_txn.insert(c.transaction_id);
                }
                Recorded::New(_) => {}
            }
        }
        assert_eq!(new, 1, "one charge under the shared key");
        assert_eq!(same_txn.len(), 1, "every other request replays it");
        let stats = ledger.write_stats().unwrap();
        let syncs = stats.syncs.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            stats
                .synced_charges
                .load(std::sync::atomic::Ordering::Relaxed),
            301
        );
        assert!(syncs < 301, "{syncs} syncs for 301 charges");
        drop(ledger);
        let reopened = Ledger::open(&path, CommitDelay::NONE).unwrap();
        let audit = reopened.audit(None);
        assert_eq!(
            (audit.charges, audit.keys, audit.replay.repeated_keys),
            (301, 301, 0)
        );
    }

    #[test]
    fn a_second_open_of_one_log_is_refused_while_the_first_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let first = Ledger::open(&path, CommitDelay::NONE).unwrap();
        let err = Ledger::open(&path, CommitDelay::NONE)
            .err()
            .expect("the log is locked");
        assert_eq!(err.kind(), io::ErrorKind::ResourceBusy);
        assert!(err.to_string().contains("another payment-service"), "{err}");
        drop(first);
        Ledger::open(&path, CommitDelay::NONE).expect("free once the first is closed");
    }

    #[test]
    fn a_key_charged_twice_in_the_log_is_reported_not_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let req = request("5.00");
        // What two processes on one log would leave: one key, two charges.
        let charges: Vec<Charge> = (0..2).map(|_| Charge::new(key("k"), &req)).collect();
        let lines: String = charges
            .iter()
            .map(|c| serde_json::to_string(c).unwrap() + "\n")
            .collect();
        std::fs::write(&path, lines).unwrap();

        let ledger = Ledger::open(&path, CommitDelay::NONE).unwrap();
        assert_eq!(ledger.lookup(&key("k")), Some(charges[0].clone()));
        let audit = ledger.audit(Some(Page {
            after: 0,
            limit: 10,
        }));
        assert_eq!((audit.charges, audit.keys), (2, 1));
        assert_eq!(audit.replay.repeated_keys, 1);
        assert_eq!(audit.duplicates.len(), 1);
        assert_eq!(
            audit.duplicates[0].transaction_ids.len(),
            2,
            "both transactions are listed"
        );
        assert_eq!(audit.entries.unwrap().len(), 2);
    }

    #[test]
    fn a_corrupt_line_before_the_end_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        std::fs::write(&path, "not json\n").unwrap();
        let err = Ledger::open(&path, CommitDelay::NONE).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
