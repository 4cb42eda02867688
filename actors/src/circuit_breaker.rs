//! The circuit breaker actor: every payment attempt asks it for admission
//! and reports its outcome, so all workers share one view of payment's
//! health and every transition happens once, in order.
//!
//! The decisions are in [`machine`] (pure, tested with instants); this file
//! is the actor around it: messages, the clock, tracing, supervision.
//! A restart rebuilds the machine from its configuration and keeps the
//! operator's mode: the window's counts are lost (at worst the breaker
//! closes early and trips again after a few failures), a forced mode is not.

pub mod machine;

use actix::{Actor, Addr, Context, Handler, Message, Supervised};
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
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig, clock: SharedClock) -> Self {
        let machine = Machine::new(config, clock.now());
        Self {
            machine,
            clock,
            observer: None,
        }
    }

    pub fn with_observer(mut self, observer: TransitionObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Logs a transition as an event of the span it happened in.
    fn announce(&self, transition: Option<Transition>) -> Option<Transition> {
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
        }
        transition
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
        self.announce(transition);
        guarded(ctx, NAME, || self.machine.status(now))
    }
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
            matches!(rejected, Err(AdmitError::Open(r)) if r.retry_after == Duration::from_secs(30))
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
}
