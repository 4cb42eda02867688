//! The reconciler actor: keeps re-driving every operation whose outcome is
//! unknown until one attempt gives a definitive answer.
//!
//! Mechanism only: what "re-drive" means (charge the order again under the
//! same payment key, then persist what payment said) is the `Redrive`
//! function its owner provides; the actor owns the schedule. Each tracked
//! key is due every `interval`, backing off exponentially up to
//! `max_backoff` while its outcome stays unknown, with at most
//! `max_concurrent` re-drives running at once so that a backlog after an
//! outage does not stampede the recovering dependency.
//!
//! An operation is tracked *before* its first attempt leaves (`Track` with a
//! `hold`): its owner is attempting it right now, so the first re-drive is
//! due only when the hold ends; the owner `Report`s what it learned. An
//! owner that never reports (cancelled, crashed) leaves the key due when its
//! hold ends, so nothing depends on the owner running to the end.
//!
//! A restart keeps every tracked key (it is the same actor value) and
//! forgets only the re-drives that were running: they are due again at once.
//!
//! With a shared store the work is not this process's to track: each
//! operation is a row with a due time, and the actor [`Claims`] due rows
//! under a lease instead (`Reconciler::claiming`). Replicas then share the
//! work without re-driving one operation twice at once, and the claims of a
//! replica that dies fall due for the others when their lease ends. `Track`
//! and `Report` change nothing in that mode: the row is the schedule.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use actix::fut::wrap_future;
use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseFuture, Supervised,
};

use crate::clock::SharedClock;
use crate::supervision::{ActorFailed, Crash, guarded};

const NAME: &str = "Reconciler";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcilerConfig {
    pub interval: Duration,
    pub max_backoff: Duration,
    pub max_concurrent: usize,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_concurrent: 4,
        }
    }
}

/// What one re-drive learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The outcome is known now (or there is nothing left to do): forget it.
    Settled,
    /// Still unknown: try again later.
    Unknown,
}

/// Re-drives one tracked item; `attempt` counts from 1.
pub type Redrive<T> = Box<dyn Fn(T, u32) -> Pin<Box<dyn Future<Output = Verdict>>>>;

/// A future the actor runs on its own thread.
pub type Local<T> = Pin<Box<dyn Future<Output = T>>>;

/// Work kept in a store shared by several processes.
pub trait Claims<T>: 'static {
    /// Claims at most `n` due items for this process, each with its attempt
    /// number (from 1); a claim lasts a lease, after which an item not
    /// settled meanwhile is due again, for anyone. Answers nothing when the
    /// store cannot be reached (the next tick tries again).
    fn claim(&self, n: usize) -> Local<Vec<(T, u32)>>;
    /// Items not settled yet, in the whole store.
    fn pending(&self) -> Local<Option<usize>>;
}

struct Entry<T> {
    payload: T,
    attempts: u32,
    due: Instant,
    running: bool,
}

/// Start tracking `key`, first due after `hold` (its owner is attempting
/// it meanwhile). Tracking a key already tracked only extends its hold.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Track<T: Send + 'static> {
    pub key: String,
    pub payload: T,
    pub hold: Duration,
}

/// What the owner's own attempt learned. Settled (`None`) forgets the
/// key; still unknown makes it due after one interval — tracking it again,
/// with the payload given, if a settled re-drive forgot it meanwhile (the
/// owner joined while that re-drive ran). Only an unknown outcome needs the
/// payload, so only it pays for one.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Report<T: Send + 'static> {
    pub key: String,
    pub still_unknown: Option<T>,
}

/// Run what is due now (the interval timer sends it too).
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, ActorFailed>")]
pub struct Tick;

/// Items not settled yet: tracked here, or in the shared store.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, ActorFailed>")]
pub struct PendingCount;

#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Done {
    key: String,
    verdict: Verdict,
}

pub struct Reconciler<T: Clone + Send + Unpin + 'static> {
    config: ReconcilerConfig,
    clock: SharedClock,
    redrive: Redrive<T>,
    entries: HashMap<String, Entry<T>>,
    running: usize,
    /// Set: the work is claimed from a shared store, not tracked here.
    claims: Option<Box<dyn Claims<T>>>,
    /// A claim is on its way: no second one until it answers.
    claiming: bool,
}

impl<T: Clone + Send + Unpin + 'static> Reconciler<T> {
    pub fn new(config: ReconcilerConfig, clock: SharedClock, redrive: Redrive<T>) -> Self {
        Self {
            config,
            clock,
            redrive,
            entries: HashMap::new(),
            running: 0,
            claims: None,
            claiming: false,
        }
    }

    /// A reconciler that claims its work from a shared store.
    pub fn claiming(
        config: ReconcilerConfig,
        clock: SharedClock,
        redrive: Redrive<T>,
        claims: Box<dyn Claims<T>>,
    ) -> Self {
        Self {
            claims: Some(claims),
            ..Self::new(config, clock, redrive)
        }
    }

    /// Starts a re-drive; it reports `Done` for `key`.
    fn spawn_redrive(&mut self, ctx: &mut Context<Self>, key: String, payload: T, attempt: u32) {
        self.running += 1;
        let future = (self.redrive)(payload, attempt);
        ctx.spawn(wrap_future::<_, Self>(future).map(move |verdict, _, ctx| {
            ctx.notify(Done { key, verdict });
        }));
    }

    /// Claims as many due items as there are free slots, and re-drives them.
    fn claim_due(&mut self, ctx: &mut Context<Self>) {
        let free = self.config.max_concurrent.saturating_sub(self.running);
        let Some(claims) = &self.claims else { return };
        if self.claiming || free == 0 {
            return;
        }
        self.claiming = true;
        let claimed = claims.claim(free);
        ctx.spawn(
            wrap_future::<_, Self>(claimed).map(|claimed, reconciler, ctx| {
                reconciler.claiming = false;
                for (payload, attempt) in claimed {
                    // The row is the schedule: nothing to remember per key.
                    reconciler.spawn_redrive(ctx, String::new(), payload, attempt);
                }
            }),
        );
    }

    fn backoff(&self, attempts: u32) -> Duration {
        self.config
            .interval
            .saturating_mul(1 << attempts.min(16))
            .min(self.config.max_backoff)
    }

    /// Starts the due re-drives, up to the concurrency limit.
    fn run_due(&mut self, ctx: &mut Context<Self>) -> usize {
        if self.claims.is_some() {
            self.claim_due(ctx);
            return 0;
        }
        let now = self.clock.now();
        let mut due: Vec<(Instant, String)> = self
            .entries
            .iter()
            .filter(|(_, e)| !e.running && e.due <= now)
            .map(|(k, e)| (e.due, k.clone()))
            .collect();
        due.sort();
        let mut started = 0;
        for (_, key) in due {
            if self.running >= self.config.max_concurrent {
                break;
            }
            let entry = self.entries.get_mut(&key).expect("listed above");
            entry.running = true;
            entry.attempts += 1;
            let (payload, attempt) = (entry.payload.clone(), entry.attempts);
            started += 1;
            self.spawn_redrive(ctx, key, payload, attempt);
        }
        started
    }
}

impl<T: Clone + Send + Unpin + 'static> Actor for Reconciler<T> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.config.interval, |reconciler, ctx| {
            reconciler.run_due(ctx);
        });
    }
}

impl<T: Clone + Send + Unpin + 'static> Supervised for Reconciler<T> {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // The running futures died with the old context: due again now.
        let now = self.clock.now();
        for entry in self.entries.values_mut().filter(|e| e.running) {
            entry.running = false;
            entry.due = now;
        }
        self.running = 0;
        // A claim that was on its way died too; its items fall due again
        // when their lease ends.
        self.claiming = false;
    }
}

impl<T: Clone + Send + Unpin + 'static> Handler<Track<T>> for Reconciler<T> {
    type Result = ();

    fn handle(&mut self, msg: Track<T>, ctx: &mut Context<Self>) {
        if self.claims.is_some() {
            return;
        }
        let due = self.clock.now() + msg.hold;
        let _ = guarded(ctx, NAME, || {
            let entry = self.entries.entry(msg.key).or_insert(Entry {
                payload: msg.payload,
                attempts: 0,
                due,
                running: false,
            });
            entry.due = entry.due.max(due);
        });
    }
}

impl<T: Clone + Send + Unpin + 'static> Handler<Report<T>> for Reconciler<T> {
    type Result = ();

    fn handle(&mut self, msg: Report<T>, ctx: &mut Context<Self>) {
        if self.claims.is_some() {
            return;
        }
        let due = self.clock.now() + self.config.interval;
        let _ = guarded(ctx, NAME, || match msg.still_unknown {
            // A re-drive still running reports on its own; it finds the
            // entry gone and is done.
            None => {
                self.entries.remove(&msg.key);
            }
            Some(payload) => {
                let entry = self.entries.entry(msg.key).or_insert(Entry {
                    payload,
                    attempts: 0,
                    due,
                    running: false,
                });
                // A running re-drive reschedules when it is done.
                if !entry.running {
                    entry.due = due;
                }
            }
        });
    }
}

impl<T: Clone + Send + Unpin + 'static> Handler<Done> for Reconciler<T> {
    type Result = ();

    fn handle(&mut self, msg: Done, ctx: &mut Context<Self>) {
        let now = self.clock.now();
        let _ = guarded(ctx, NAME, || {
            self.running = self.running.saturating_sub(1);
            match msg.verdict {
                Verdict::Settled => {
                    self.entries.remove(&msg.key);
                }
                Verdict::Unknown => {
                    let attempts = self.entries.get(&msg.key).map_or(0, |e| e.attempts);
                    let backoff = self.backoff(attempts);
                    if let Some(entry) = self.entries.get_mut(&msg.key) {
                        entry.running = false;
                        entry.due = now + backoff;
                    }
                }
            }
        });
    }
}

impl<T: Clone + Send + Unpin + 'static> Handler<Tick> for Reconciler<T> {
    type Result = Result<usize, ActorFailed>;

    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) -> Self::Result {
        let started = self.run_due(ctx);
        Ok(started)
    }
}

impl<T: Clone + Send + Unpin + 'static> Handler<PendingCount> for Reconciler<T> {
    type Result = ResponseFuture<Result<usize, ActorFailed>>;

    fn handle(&mut self, _: PendingCount, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(claims) = &self.claims {
            let pending = claims.pending();
            // Unknown (store unreachable) reads as an error, never as zero.
            return Box::pin(async move { pending.await.ok_or(ActorFailed { actor: NAME }) });
        }
        let tracked = guarded(ctx, NAME, || self.entries.len());
        Box::pin(std::future::ready(tracked))
    }
}

impl<T: Clone + Send + Unpin + 'static> Handler<Crash> for Reconciler<T> {
    type Result = Result<(), ActorFailed>;

    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) -> Self::Result {
        guarded(ctx, NAME, || panic!("Reconciler told to crash"))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::rc::Rc;
    use std::sync::Arc;

    use actix::{Addr, Supervisor};

    use super::*;
    use crate::clock::ManualClock;

    const HOUR: Duration = Duration::from_secs(3600);

    /// (key, attempt) of every re-drive, in order.
    type Log = Rc<RefCell<Vec<(String, u32)>>>;

    /// A redrive that answers from a script and logs what it was asked.
    fn scripted(answers: Vec<Verdict>) -> (Redrive<String>, Log) {
        let log = Rc::new(RefCell::new(Vec::new()));
        let answers = Rc::new(RefCell::new(VecDeque::from(answers)));
        let seen = log.clone();
        let redrive: Redrive<String> = Box::new(move |key, attempt| {
            seen.borrow_mut().push((key, attempt));
            let verdict = answers.borrow_mut().pop_front().unwrap_or(Verdict::Settled);
            Box::pin(async move { verdict })
        });
        (redrive, log)
    }

    fn start(
        clock: &ManualClock,
        redrive: Redrive<String>,
        max_concurrent: usize,
    ) -> Addr<Reconciler<String>> {
        let config = ReconcilerConfig {
            // The timer never fires in these tests: they send Tick.
            interval: Duration::from_secs(3600),
            max_backoff: Duration::from_secs(4 * 3600),
            max_concurrent,
        };
        let clock: SharedClock = Arc::new(clock.clone());
        let redrive = RefCell::new(Some(redrive));
        Supervisor::start(move |_| {
            Reconciler::new(
                config,
                clock.clone(),
                redrive.borrow_mut().take().expect("started once"),
            )
        })
    }

    async fn tick(addr: &Addr<Reconciler<String>>) -> usize {
        let started = addr.send(Tick).await.unwrap().unwrap();
        // Let the spawned re-drives finish and report back.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        started
    }

    async fn pending(addr: &Addr<Reconciler<String>>) -> usize {
        addr.send(PendingCount).await.unwrap().unwrap()
    }

    #[actix_rt::test]
    async fn re_drives_until_settled_backing_off_between_tries() {
        let clock = ManualClock::default();
        let (redrive, log) = scripted(vec![Verdict::Unknown, Verdict::Unknown, Verdict::Settled]);
        let addr = start(&clock, redrive, 4);
        addr.send(Track {
            key: "o1".into(),
            payload: "o1".into(),
            hold: HOUR,
        })
        .await
        .unwrap();
        assert_eq!(tick(&addr).await, 0, "not due before one interval");

        let hour = Duration::from_secs(3600);
        clock.advance(hour);
        assert_eq!(tick(&addr).await, 1);
        clock.advance(hour);
        assert_eq!(tick(&addr).await, 0, "backed off to two intervals");
        clock.advance(hour);
        assert_eq!(tick(&addr).await, 1);
        clock.advance(4 * hour);
        assert_eq!(tick(&addr).await, 1);
        assert_eq!(
            *log.borrow(),
            [("o1".into(), 1), ("o1".into(), 2), ("o1".into(), 3)]
        );
        assert_eq!(pending(&addr).await, 0, "settled and forgotten");
    }

    #[actix_rt::test]
    async fn tracking_twice_is_tracking_once_and_concurrency_is_bounded() {
        let clock = ManualClock::default();
        let (redrive, log) = scripted(vec![]);
        let addr = start(&clock, redrive, 2);
        for key in ["a", "a", "b", "c"] {
            addr.send(Track {
                key: key.into(),
                payload: key.into(),
                hold: HOUR,
            })
            .await
            .unwrap();
        }
        assert_eq!(pending(&addr).await, 3);
        clock.advance(Duration::from_secs(3600));
        assert_eq!(tick(&addr).await, 2, "at most two at once");
        assert_eq!(tick(&addr).await, 1);
        assert_eq!(log.borrow().len(), 3);
        assert_eq!(pending(&addr).await, 0);
    }

    #[actix_rt::test]
    async fn an_owner_that_reports_settled_leaves_nothing_to_re_drive() {
        let clock = ManualClock::default();
        let (redrive, log) = scripted(vec![]);
        let addr = start(&clock, redrive, 4);
        for key in ["settled", "unknown", "silent"] {
            addr.send(Track {
                key: key.into(),
                payload: key.into(),
                hold: 2 * HOUR,
            })
            .await
            .unwrap();
        }
        for (key, still_unknown) in [("settled", None), ("unknown", Some("unknown".into()))] {
            addr.send(Report {
                key: key.into(),
                still_unknown,
            })
            .await
            .unwrap();
        }
        assert_eq!(pending(&addr).await, 2);
        clock.advance(HOUR);
        assert_eq!(tick(&addr).await, 1, "the unknown one, one interval later");
        // The owner that never reported (cancelled, crashed): due when its hold ends.
        clock.advance(HOUR);
        assert_eq!(tick(&addr).await, 1);
        assert_eq!(*log.borrow(), [("unknown".into(), 1), ("silent".into(), 1)]);
        assert_eq!(pending(&addr).await, 0);
    }

    /// A re-drive settles the key while its owner's new flow has just
    /// joined; that flow's outcome stays unknown. The key is tracked again.
    #[actix_rt::test]
    async fn an_unknown_report_after_a_settled_re_drive_tracks_the_key_again() {
        let clock = ManualClock::default();
        let (redrive, log) = scripted(vec![Verdict::Settled, Verdict::Settled]);
        let addr = start(&clock, redrive, 4);
        addr.send(Track {
            key: "o".into(),
            payload: "o".into(),
            hold: HOUR,
        })
        .await
        .unwrap();
        clock.advance(HOUR);
        assert_eq!(tick(&addr).await, 1);
        assert_eq!(pending(&addr).await, 0, "settled by the re-drive");
        addr.send(Report {
            key: "o".into(),
            still_unknown: Some("o".into()),
        })
        .await
        .unwrap();
        assert_eq!(pending(&addr).await, 1, "tracked again");
        clock.advance(HOUR);
        assert_eq!(tick(&addr).await, 1);
        assert_eq!(log.borrow().len(), 2);
    }

    /// A shared store's claims, answered from a script; logs what it was asked.
    struct ScriptedClaims {
        batches: RefCell<VecDeque<Vec<(String, u32)>>>,
        asked: Rc<RefCell<Vec<usize>>>,
    }

    impl Claims<String> for ScriptedClaims {
        fn claim(&self, n: usize) -> Local<Vec<(String, u32)>> {
            self.asked.borrow_mut().push(n);
            let batch = self.batches.borrow_mut().pop_front().unwrap_or_default();
            Box::pin(async move { batch })
        }

        fn pending(&self) -> Local<Option<usize>> {
            Box::pin(async { Some(7) })
        }
    }

    #[actix_rt::test]
    async fn claiming_it_re_drives_what_it_claims_within_its_free_slots() {
        let clock = ManualClock::default();
        // The first re-drive never ends: it keeps its slot.
        let (redrive, log) = scripted(vec![]);
        let stuck = Rc::new(RefCell::new(false));
        let stuck_seen = stuck.clone();
        let redrive: Redrive<String> = Box::new(move |key, attempt| {
            let first = !*stuck_seen.borrow();
            *stuck_seen.borrow_mut() = true;
            let answer = redrive(key, attempt);
            Box::pin(async move {
                if first {
                    std::future::pending::<()>().await;
                }
                answer.await
            })
        });
        let asked = Rc::new(RefCell::new(Vec::new()));
        let claims = ScriptedClaims {
            batches: RefCell::new(VecDeque::from(vec![
                vec![("a".into(), 1), ("b".into(), 4)],
                vec![("c".into(), 2)],
            ])),
            asked: asked.clone(),
        };
        let config = ReconcilerConfig {
            interval: HOUR,
            max_backoff: 4 * HOUR,
            max_concurrent: 3,
        };
        let shared: SharedClock = Arc::new(clock.clone());
        let claims = RefCell::new(Some(Box::new(claims) as Box<dyn Claims<String>>));
        let redrive = RefCell::new(Some(redrive));
        let addr = Supervisor::start(move |_| {
            Reconciler::claiming(
                config,
                shared.clone(),
                redrive.borrow_mut().take().unwrap(),
                claims.borrow_mut().take().unwrap(),
            )
        });
        // The table is the schedule: what this process tracks changes nothing.
        addr.send(Track {
            key: "tracked".into(),
            payload: "tracked".into(),
            hold: Duration::ZERO,
        })
        .await
        .unwrap();
        tick(&addr).await;
        assert_eq!(*log.borrow(), [("a".into(), 1), ("b".into(), 4)]);
        // "a" still runs: two free slots.
        tick(&addr).await;
        assert_eq!(*asked.borrow(), [3, 2]);
        assert_eq!(log.borrow().len(), 3);
        assert_eq!(log.borrow()[2], ("c".into(), 2));
        assert_eq!(pending(&addr).await, 7, "the store's count");
    }

    #[actix_rt::test]
    async fn a_restart_keeps_what_it_tracks() {
        let clock = ManualClock::default();
        let (redrive, log) = scripted(vec![]);
        let addr = start(&clock, redrive, 4);
        addr.send(Track {
            key: "kept".into(),
            payload: "kept".into(),
            hold: HOUR,
        })
        .await
        .unwrap();
        assert!(addr.send(Crash).await.unwrap().is_err());
        assert_eq!(pending(&addr).await, 1);
        clock.advance(Duration::from_secs(3600));
        tick(&addr).await;
        assert_eq!(log.borrow().len(), 1);
        assert_eq!(pending(&addr).await, 0);
    }
}
