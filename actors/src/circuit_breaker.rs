//! The circuit breaker actor: every payment attempt asks it for admission
//! and reports its outcome, so all workers share one view of payment's
//! health and every transition happens once, in order.
//!
//! The decisions are in [`machine`] (pure, tested with instants); this file
//! is the actor around it: messages, the clock, tracing, supervision.
//! A restart rebuilds the machine from its configuration and keeps the
//! operator's mode: the window's counts are lost (at worst the breaker
//! closes early and trips again after a few failures), a forced mode is not.
//!
//! Watchers ([`Watch`]) get the state, then every transition as it
//! happens, each through a small buffer of its own: a watcher that does not
//! keep up, or went away, is dropped at the next transition, so no reader
//! ever slows the actor (its stream ends; it can watch again).

pub mod machine;

use std::time::{SystemTime, UNIX_EPOCH};

use actix::{Actor, Addr, Context, Handler, Message, Supervised};
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::Span;

pub use machine::{
    Admission, BreakerConfig, Machine, Mode, Outcome, Rejection, State, Status, Transition,
    TripReason,
};

use crate::clock::SharedClock;
use crate::supervision::{ActorFailed, Crash, guarded};

const NAME: &str = "CircuitBreaker";

/// Why an attempt may not go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmitError {
    Open(Rejection),
    Failed(ActorFailed),
}

/// May one attempt go to payment-service now?
#[derive(Debug, Message)]
#[rtype(result = "Result<Admission, AdmitError>")]
pub struct Admit {
    pub span: Span,
}

/// How an admitted attempt ended. Sent without waiting (`do_send`).
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<Transition>, ActorFailed>")]
pub struct Record {
    pub admission: Admission,
    pub outcome: Outcome,
    pub span: Span,
}

#[derive(Debug, Message)]
#[rtype(result = "Result<Status, ActorFailed>")]
pub struct GetStatus;

/// What a watcher receives: the state when it starts watching, then each
/// transition with what led to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BreakerEvent {
    State {
        /// Milliseconds since the Unix epoch (wall clock, for people).
        at_ms: u64,
        status: Status,
    },
    Transition {
        at_ms: u64,
        from: State,
        to: State,
        reason: TripReason,
        /// The window's counts and the failure streak as the transition
        /// found them.
        window_calls: u32,
        window_failures: u32,
        consecutive_failures: u32,
    },
}

impl BreakerEvent {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            BreakerEvent::State { .. } => "state",
            BreakerEvent::Transition { .. } => "transition",
        }
    }
}

/// Events a watcher may fall behind by before it is dropped.
pub const WATCH_BUFFER: usize = 64;
/// Watchers at once; more are refused.
pub const MAX_WATCHERS: usize = 32;

/// Start watching: the current state, then every transition.
#[derive(Debug, Message)]
#[rtype(result = "Result<mpsc::Receiver<BreakerEvent>, WatchError>")]
pub struct Watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchError {
    TooManyWatchers,
    ShuttingDown,
    Failed(ActorFailed),
}

/// Ends every watch, and refuses new ones from now on (a shutdown: open
/// streams must not hold it up, nor streams opened while it drains).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct EndWatches;

/// An admitted attempt's duty to report how it ended. Dropped unreported —
/// the request that held it was cancelled at an `.await` — it reports
/// [`Outcome::Cancelled`], so no half-open trial slot is held by a request
/// that no longer exists.
#[derive(Debug)]
pub struct Pass {
    breaker: Addr<CircuitBreaker>,
    admission: Option<Admission>,
}

impl Pass {
    pub fn state(&self) -> State {
        self.admission.map_or(State::Closed, |a| a.state)
    }

    pub fn record(mut self, outcome: Outcome, span: Span) {
        self.report(outcome, span);
    }

    /// Sends the outcome, once.
    fn report(&mut self, outcome: Outcome, span: Span) {
        if let Some(admission) = self.admission.take() {
            self.breaker.do_send(Record {
                admission,
                outcome,
                span,
            });
        }
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        self.report(Outcome::Cancelled, Span::none());
    }
}

/// Asks for admission of one attempt. An admission whose reply is lost (the
/// caller was dropped while waiting for it) is covered by the machine's
/// `trial_timeout`.
pub async fn admit(breaker: &Addr<CircuitBreaker>, span: Span) -> Result<Pass, AdmitError> {
    let failed = AdmitError::Failed(ActorFailed { actor: NAME });
    let admission = breaker.send(Admit { span }).await.map_err(|_| failed)??;
    Ok(Pass {
        breaker: breaker.clone(),
        admission: Some(admission),
    })
}

/// Operator override (`PUT /admin/breaker`); answers the new status.
#[derive(Debug, Message)]
#[rtype(result = "Result<Status, ActorFailed>")]
pub struct SetMode {
    pub mode: Mode,
    pub span: Span,
}

/// Called with every transition, on the actor's thread (metrics hook).
pub type TransitionObserver = Box<dyn Fn(&Transition) + Send>;

pub struct CircuitBreaker {
    machine: Machine,
    clock: SharedClock,
    observer: Option<TransitionObserver>,
    watchers: Vec<mpsc::Sender<BreakerEvent>>,
    /// After [`EndWatches`]: no new watcher.
    watches_ended: bool,
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig, clock: SharedClock) -> Self {
        let machine = Machine::new(config, clock.now());
        Self {
            machine,
            clock,
            observer: None,
            watchers: Vec::new(),
            watches_ended: false,
        }
    }

    pub fn with_observer(mut self, observer: TransitionObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Logs a transition as an event of the span it happened in, and
    /// tells the watchers.
    fn announce(&mut self, transition: Option<Transition>) -> Option<Transition> {
        if let Some(t) = &transition {
            tracing::info!(
                cb.from = t.from.as_str(),
                cb.to = t.to.as_str(),
                cb.reason = ?t.reason,
                "cb.transition"
            );
            if let Some(observer) = &self.observer {
                observer(t);
            }
            if !self.watchers.is_empty() {
                let event = BreakerEvent::Transition {
                    at_ms: wall_clock_ms(),
                    from: t.from,
                    to: t.to,
                    reason: t.reason.clone(),
                    window_calls: t.window_calls,
                    window_failures: t.window_failures,
                    consecutive_failures: t.consecutive_failures,
                };
                self.tell_watchers(event);
            }
        }
        transition
    }

    /// Full or gone: dropped, never waited for.
    fn tell_watchers(&mut self, event: BreakerEvent) {
        self.watchers
            .retain(|watcher| watcher.try_send(event.clone()).is_ok());
    }

    /// The state as it is now, to the watchers: after a change that is not
    /// a transition (a mode that leaves the state as it was, a restart).
    fn tell_state(&mut self, now: std::time::Instant) {
        if !self.watchers.is_empty() {
            let status = self.machine.status(now);
            self.tell_watchers(BreakerEvent::State {
                at_ms: wall_clock_ms(),
                status,
            });
        }
    }
}

impl Actor for CircuitBreaker {
    type Context = Context<Self>;
}

impl Supervised for CircuitBreaker {
    fn restarting(&mut self, _: &mut Context<Self>) {
        let now = self.clock.now();
        let mode = self.machine.status(now).mode;
        self.machine = Machine::new(*self.machine.config(), now);
        if mode != Mode::Auto {
            self.machine.set_mode(mode, now);
        }
        // A fresh machine, without a transition: watchers learn it.
        self.tell_state(now);
    }
}

impl Handler<Admit> for CircuitBreaker {
    type Result = Result<Admission, AdmitError>;

    /// Admits in closed state and for half-open trials; rejects while open.
    fn handle(&mut self, msg: Admit, ctx: &mut Context<Self>) -> Self::Result {
        let span = crate::child_span(&msg.span, || {
            tracing::info_span!(
                "breaker.admit",
                actor.name = NAME,
                actor.message = "Admit",
                cb.state = tracing::field::Empty,
            )
        });
        let _entered = span.enter();
        let (admission, transition) = guarded(ctx, NAME, || self.machine.admit(self.clock.now()))
            .map_err(AdmitError::Failed)?;
        self.announce(transition);
        span.record("cb.state", self.machine.state().as_str());
        admission.map_err(AdmitError::Open)
    }
}

impl Handler<Record> for CircuitBreaker {
    type Result = Result<Option<Transition>, ActorFailed>;

    /// Counts the outcome in the period it was admitted in.
    fn handle(&mut self, msg: Record, ctx: &mut Context<Self>) -> Self::Result {
        let span = crate::child_span(&msg.span, || {
            tracing::info_span!(
                "breaker.record",
                actor.name = NAME, actor.message = "Record", cb.outcome = ?msg.outcome,
            )
        });
        let _entered = span.enter();
        let now = self.clock.now();
        let transition = guarded(ctx, NAME, || {
            self.machine.record(msg.admission, msg.outcome, now)
        })?;
        Ok(self.announce(transition))
    }
}

impl Handler<GetStatus> for CircuitBreaker {
    type Result = Result<Status, ActorFailed>;

    /// Also ends an overdue half-open trial, so the status never shows a
    /// breaker waiting on an outcome that will not come.
    fn handle(&mut self, _: GetStatus, ctx: &mut Context<Self>) -> Self::Result {
        let now = self.clock.now();
        let expired = guarded(ctx, NAME, || self.machine.expire(now))?;
        self.announce(expired);
        guarded(ctx, NAME, || self.machine.status(now))
    }
}

impl Handler<SetMode> for CircuitBreaker {
    type Result = Result<Status, ActorFailed>;

    fn handle(&mut self, msg: SetMode, ctx: &mut Context<Self>) -> Self::Result {
        let span = crate::child_span(&msg.span, || {
            tracing::info_span!(
                "breaker.set_mode",
                actor.name = NAME, actor.message = "SetMode", cb.mode = ?msg.mode,
            )
        });
        let _entered = span.enter();
        let now = self.clock.now();
        let transition = guarded(ctx, NAME, || self.machine.set_mode(msg.mode, now))?;
        if self.announce(transition).is_none() {
            // The mode changed, the state did not: no transition to tell.
            self.tell_state(now);
        }
        guarded(ctx, NAME, || self.machine.status(now))
    }
}

impl Handler<Watch> for CircuitBreaker {
    type Result = Result<mpsc::Receiver<BreakerEvent>, WatchError>;

    fn handle(&mut self, _: Watch, ctx: &mut Context<Self>) -> Self::Result {
        if self.watches_ended {
            return Err(WatchError::ShuttingDown);
        }
        self.watchers.retain(|watcher| !watcher.is_closed());
        if self.watchers.len() >= MAX_WATCHERS {
            return Err(WatchError::TooManyWatchers);
        }
        let now = self.clock.now();
        // As GetStatus: an overdue trial ends first, announced to those
        // already watching, so the new watcher's state is the current one.
        let expired =
            guarded(ctx, NAME, || self.machine.expire(now)).map_err(WatchError::Failed)?;
        self.announce(expired);
        let status = guarded(ctx, NAME, || self.machine.status(now)).map_err(WatchError::Failed)?;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let first = BreakerEvent::State {
            at_ms: wall_clock_ms(),
            status,
        };
        if tx.try_send(first).is_ok() {
            self.watchers.push(tx);
        }
        Ok(rx)
    }
}

impl Handler<EndWatches> for CircuitBreaker {
    type Result = ();

    fn handle(&mut self, _: EndWatches, _: &mut Context<Self>) {
        self.watches_ended = true;
        self.watchers.clear();
    }
}

fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Handler<Crash> for CircuitBreaker {
    type Result = Result<(), ActorFailed>;

    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) -> Self::Result {
        guarded(ctx, NAME, || panic!("CircuitBreaker told to crash"))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use actix::Supervisor;

    use super::*;
    use crate::clock::ManualClock;

    fn start(clock: &ManualClock) -> actix::Addr<CircuitBreaker> {
        let clock: SharedClock = Arc::new(clock.clone());
        let config = BreakerConfig {
            consecutive_failures: 2,
            ..BreakerConfig::default()
        };
        Supervisor::start(move |_| CircuitBreaker::new(config, clock))
    }

    async fn fail(addr: &actix::Addr<CircuitBreaker>) -> Option<Transition> {
        let admission = addr
            .send(Admit { span: Span::none() })
            .await
            .unwrap()
            .unwrap();
        addr.send(Record {
            admission,
            outcome: Outcome::Failure,
            span: Span::none(),
        })
        .await
        .unwrap()
        .unwrap()
    }

    #[actix_rt::test]
    async fn the_actor_opens_rejects_and_probes_on_its_clock() {
        let clock = ManualClock::default();
        let addr = start(&clock);
        assert_eq!(fail(&addr).await, None);
        assert_eq!(fail(&addr).await.map(|t| t.to), Some(State::Open));
        let rejected = addr.send(Admit { span: Span::none() }).await.unwrap();
        assert!(
            matches!(rejected, Err(AdmitError::Open(r)) if r.retry_after == Some(Duration::from_secs(30)))
        );
        clock.advance(Duration::from_secs(30));
        let trial = addr
            .send(Admit { span: Span::none() })
            .await
            .unwrap()
            .unwrap();
        assert!(trial.trial);
        let status = addr.send(GetStatus).await.unwrap().unwrap();
        assert_eq!(status.state, State::HalfOpen);
    }

    async fn open_then_half_open(addr: &actix::Addr<CircuitBreaker>, clock: &ManualClock) {
        fail(addr).await;
        fail(addr).await;
        clock.advance(Duration::from_secs(30));
    }

    #[actix_rt::test]
    async fn a_dropped_pass_reports_cancelled_and_frees_the_trial_slot() {
        let clock = ManualClock::default();
        let addr = start(&clock);
        open_then_half_open(&addr, &clock).await;
        let passes: Vec<Pass> = admit_all(&addr, 3).await;
        assert!(admit(&addr, Span::none()).await.is_err(), "3 trials only");
        drop(passes);
        let status = addr.send(GetStatus).await.unwrap().unwrap();
        assert_eq!(
            (status.state, status.half_open_admitted),
            (State::HalfOpen, 0)
        );
        assert!(admit(&addr, Span::none()).await.is_ok());
    }

    #[actix_rt::test]
    async fn an_unreported_trial_expires_on_the_clock_and_status_shows_it_open() {
        let clock = ManualClock::default();
        let addr = start(&clock);
        open_then_half_open(&addr, &clock).await;
        // Admitted, but its reply never read: nobody will report.
        let lost = addr
            .send(Admit { span: Span::none() })
            .await
            .unwrap()
            .unwrap();
        assert!(lost.trial);
        clock.advance(Duration::from_millis(1500));
        let status = addr.send(GetStatus).await.unwrap().unwrap();
        assert_eq!(status.state, State::Open);
        assert_eq!(status.last_transition, Some(TripReason::TrialTimedOut));
        clock.advance(Duration::from_secs(30));
        assert!(admit(&addr, Span::none()).await.is_ok(), "probes again");
    }

    async fn admit_all(addr: &actix::Addr<CircuitBreaker>, n: usize) -> Vec<Pass> {
        let mut passes = Vec::new();
        for _ in 0..n {
            passes.push(admit(addr, Span::none()).await.unwrap());
        }
        passes
    }

    #[actix_rt::test]
    async fn a_panic_restarts_it_and_it_keeps_answering_with_its_mode() {
        let clock = ManualClock::default();
        let addr = start(&clock);
        addr.send(SetMode {
            mode: Mode::ForcedOpen,
            span: Span::none(),
        })
        .await
        .unwrap()
        .unwrap();
        let crashed = addr.send(Crash).await.unwrap();
        assert_eq!(crashed, Err(ActorFailed { actor: NAME }));
        let status = addr.send(GetStatus).await.unwrap().unwrap();
        assert_eq!((status.mode, status.state), (Mode::ForcedOpen, State::Open));
        addr.send(SetMode {
            mode: Mode::Auto,
            span: Span::none(),
        })
        .await
        .unwrap()
        .unwrap();
        assert!(
            addr.send(Admit { span: Span::none() })
                .await
                .unwrap()
                .is_ok()
        );
    }

    #[actix_rt::test]
    async fn a_watcher_gets_the_state_then_each_transition_with_its_counts() {
        let clock = ManualClock::default();
        let addr = start(&clock);
        let mut events = addr.send(Watch).await.unwrap().unwrap();
        match events.recv().await.unwrap() {
            BreakerEvent::State { status, .. } => assert_eq!(status.state, State::Closed),
            other => panic!("first the state, not {other:?}"),
        }
        open_then_half_open(&addr, &clock).await;
        match events.recv().await.unwrap() {
            BreakerEvent::Transition {
                from,
                to,
                reason,
                consecutive_failures,
                window_calls,
                window_failures,
                ..
            } => {
                assert_eq!((from, to), (State::Closed, State::Open));
                assert_eq!(reason, TripReason::ConsecutiveFailures { failures: 2 });
                assert_eq!(
                    (consecutive_failures, window_calls, window_failures),
                    (2, 2, 2)
                );
            }
            other => panic!("{other:?}"),
        }
        // The next admission probes: open → half-open, as it happens.
        let _trial = admit(&addr, Span::none()).await.unwrap();
        let event = events.recv().await.unwrap();
        assert!(
            matches!(
                event,
                BreakerEvent::Transition {
                    from: State::Open,
                    to: State::HalfOpen,
                    ..
                }
            ),
            "{event:?}"
        );
        assert_eq!(event.name(), "transition");
        // Forcing it open while it is open is no transition: the state.
        let _ = addr
            .send(SetMode {
                mode: Mode::ForcedClosed,
                span: Span::none(),
            })
            .await;
        let _ = events.recv().await; // half-open → closed
        let set = SetMode {
            mode: Mode::Auto,
            span: Span::none(),
        };
        addr.send(set).await.unwrap().unwrap();
        let event = events.recv().await.unwrap();
        assert!(
            matches!(&event, BreakerEvent::State { status, .. } if status.mode == Mode::Auto && status.state == State::Closed),
            "{event:?}"
        );
        addr.send(EndWatches).await.unwrap();
        assert_eq!(events.recv().await, None, "the stream ends");
        assert_eq!(
            addr.send(Watch).await.unwrap().err(),
            Some(WatchError::ShuttingDown),
            "and no new one starts"
        );
    }

    #[actix_rt::test]
    async fn a_watcher_that_does_not_read_is_dropped_and_slows_nothing() {
        let clock = ManualClock::default();
        let addr = start(&clock);
        let mut stuck = addr.send(Watch).await.unwrap().unwrap();
        let mut reading = addr.send(Watch).await.unwrap().unwrap();
        let mut seen = 0;
        // Far more transitions than a buffer holds, the reader keeping up.
        for _ in 0..WATCH_BUFFER {
            for mode in [Mode::ForcedOpen, Mode::Auto] {
                let set = SetMode {
                    mode,
                    span: Span::none(),
                };
                addr.send(set).await.unwrap().unwrap();
            }
            while reading.try_recv().is_ok() {
                seen += 1;
            }
        }
        assert_eq!(seen, 1 + 2 * WATCH_BUFFER, "the reader saw every event");
        // The stuck one got what fitted, then its stream ended.
        let mut buffered = 0;
        while stuck.recv().await.is_some() {
            buffered += 1;
        }
        assert_eq!(buffered, WATCH_BUFFER);
    }

    #[actix_rt::test]
    async fn watchers_are_bounded() {
        let clock = ManualClock::default();
        let addr = start(&clock);
        let mut held = Vec::new();
        for _ in 0..MAX_WATCHERS {
            held.push(addr.send(Watch).await.unwrap().unwrap());
        }
        assert_eq!(
            addr.send(Watch).await.unwrap().err(),
            Some(WatchError::TooManyWatchers)
        );
        // A watcher that went away frees its place.
        held.pop();
        assert!(addr.send(Watch).await.unwrap().is_ok());
    }
}
