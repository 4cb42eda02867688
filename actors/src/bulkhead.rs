//! The bulkhead actor: at most `max_concurrent` payment attempts in flight,
//! at most `max_queue` callers waiting for a turn, and each caller waiting
//! only while it can still be served in time ([`admission`] decides).
//!
//! A [`Permit`] is a guard: dropping it — the attempt finished, failed, or
//! its request was cancelled by a client disconnect or a timeout — returns
//! the slot, so no path can leak one. A waiting caller holds only a channel
//! receiver; when it gives up (its wait, bounded by the caller, ran out) the
//! receiver is dropped and the slot goes to the next live waiter.
//!
//! A restart keeps the count of permits in use (they are still out there and
//! will come back) and drops the waiters, who see their wait end as a
//! rejection.

mod admission;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, AsyncContext, Context, Handler, Message, Supervised};
use serde::Serialize;
use tokio::sync::oneshot;
use tracing::Span;

pub use self::admission::Wait;
use self::admission::{Admission, Decision};
use crate::clock::{SharedClock, SystemClock};
use crate::supervision::{ActorFailed, Crash, guarded};

const NAME: &str = "Bulkhead";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkheadConfig {
    pub max_concurrent: usize,
    pub max_queue: usize,
    /// A bound on any wait besides the caller's budget; `None`: the budget.
    pub max_wait: Option<Duration>,
    /// Under overload, the longest wait.
    pub overload_wait: Duration,
    /// The least a wait leaves of a budget for the call, however fast the
    /// recent calls were: room for payment to slow down between the holds
    /// the estimates learnt from and the call the caller will make.
    pub reserve_floor: Duration,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 10,
            max_queue: 200,
            max_wait: None,
            overload_wait: Duration::from_millis(100),
            reserve_floor: Duration::from_millis(125),
        }
    }
}

/// Why no permit was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkheadError {
    /// `max_queue` callers are already waiting.
    QueueFull,
    /// Overloaded, and no slot within the wait overload allows.
    Overloaded,
    /// No slot within what the caller's budget allows: predicted, and
    /// refused at once, or seen, when the wait ran out.
    WaitTimedOut,
    /// The actor failed or restarted while the caller waited.
    Unavailable,
}

/// One slot of the bulkhead, returned when dropped.
#[derive(Debug)]
pub struct Permit {
    bulkhead: Option<Addr<Bulkhead>>,
    /// Permits in use when this one was granted, this one included.
    pub in_use: usize,
    granted_at: Instant,
    /// What must be left of the budget to call with it: a permit handed to
    /// a waiter later than that goes back unused.
    reserve: Duration,
}

impl Permit {
    /// A permit whose drop returns nothing (it was never counted).
    fn disarm(mut self) {
        self.bulkhead = None;
    }

    /// Returns the slot without a call: no hold to learn from.
    fn give_back(mut self) {
        self.release(false);
    }

    fn release(&mut self, used: bool) {
        if let Some(bulkhead) = self.bulkhead.take() {
            bulkhead.do_send(Release {
                granted_at: self.granted_at,
                used,
            });
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.release(true);
    }
}

pub enum Grant {
    Ready(Permit),
    Queued {
        /// `None`: shed from the queue, overloaded.
        permit: oneshot::Receiver<Option<Permit>>,
        max_wait: Duration,
        wait: Wait,
    },
    /// Refused, to be answered after `after`: under overload a full queue
    /// refuses no faster than a cut wait would, so that callers who send
    /// again when answered cannot spin the service on refusals.
    Refused {
        error: BulkheadError,
        after: Duration,
    },
}

#[derive(Message)]
#[rtype(result = "Result<Grant, BulkheadError>")]
pub struct Acquire {
    /// What is left of the caller's budget: its wait and its call.
    pub budget: Duration,
    pub span: Span,
}

/// Sent by a dropped [`Permit`].
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Release {
    granted_at: Instant,
    /// Whether a call was made with it: its hold is one to learn from.
    used: bool,
}

/// Sent by a waiter whose wait ran out before its turn came.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Expired;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Status {
    pub max: usize,
    pub in_use: usize,
    pub waiting: usize,
    /// Shedding: every wait is cut to the overload wait.
    pub overloaded: bool,
}

#[derive(Debug, Message)]
#[rtype(result = "Result<Status, ActorFailed>")]
pub struct GetStatus;

pub struct Bulkhead {
    config: BulkheadConfig,
    in_use: usize,
    waiters: VecDeque<oneshot::Sender<Option<Permit>>>,
    admission: Admission,
    clock: SharedClock,
    /// Our own address, for the permits we hand out.
    me: Option<Addr<Self>>,
}

impl Bulkhead {
    pub fn new(config: BulkheadConfig) -> Self {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    pub fn with_clock(config: BulkheadConfig, clock: SharedClock) -> Self {
        Self {
            config,
            in_use: 0,
            waiters: VecDeque::new(),
            admission: Admission::new(config, clock.now()),
            clock,
            me: None,
        }
    }

    fn permit(&self, now: Instant, reserve: Duration) -> Permit {
        Permit {
            bulkhead: self.me.clone(),
            in_use: self.in_use,
            granted_at: now,
            reserve,
        }
    }

    fn status(&mut self) -> Status {
        Status {
            max: self.config.max_concurrent,
            in_use: self.in_use,
            waiting: self.waiting(),
            overloaded: self.admission.overloaded(),
        }
    }

    /// Callers still in the queue: those that gave up leave it now.
    fn waiting(&mut self) -> usize {
        self.waiters.retain(|w| !w.is_closed());
        self.waiters.len()
    }

    /// A permit at once if a slot is free and nobody waits; else a place in
    /// the queue, if there is room and the caller's turn can come in time.
    fn grant(&mut self, budget: Duration) -> Result<Grant, BulkheadError> {
        let now = self.clock.now();
        let waiting = self.waiting();
        if self.in_use < self.config.max_concurrent && waiting == 0 {
            self.in_use += 1;
            self.admission.granted_at_once(now);
            return Ok(Grant::Ready(self.permit(now, Duration::ZERO)));
        }
        if waiting >= self.config.max_queue {
            if self.admission.overloaded() {
                return Ok(Grant::Refused {
                    error: BulkheadError::QueueFull,
                    after: self.config.overload_wait.min(budget),
                });
            }
            return Err(BulkheadError::QueueFull);
        }
        let was_overloaded = self.admission.overloaded();
        let decision = self.admission.queue(now, budget, waiting);
        self.on_overload(was_overloaded);
        match decision {
            Decision::Queue { max_wait, wait } => {
                let (tx, rx) = oneshot::channel();
                self.waiters.push_back(tx);
                Ok(Grant::Queued {
                    permit: rx,
                    max_wait,
                    wait,
                })
            }
            Decision::Refuse => Err(BulkheadError::WaitTimedOut),
        }
    }

    /// Overload just began: the waiters whose turn would come after the
    /// overload wait are refused now, not when their longer waits run out.
    fn on_overload(&mut self, was_overloaded: bool) {
        if was_overloaded || !self.admission.overloaded() {
            return;
        }
        let keep = self.admission.places_within_overload_wait();
        while self.waiters.len() > keep {
            if let Some(waiter) = self.waiters.pop_back() {
                let _ = waiter.send(None);
            }
        }
    }
}

impl Actor for Bulkhead {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.me = Some(ctx.address());
    }
}

impl Supervised for Bulkhead {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.waiters.clear();
    }
}

impl Handler<Acquire> for Bulkhead {
    type Result = Result<Grant, BulkheadError>;

    fn handle(&mut self, msg: Acquire, ctx: &mut Context<Self>) -> Self::Result {
        let span = crate::child_span(&msg.span, || {
            tracing::info_span!(
                "bulkhead.acquire",
                actor.name = NAME,
                actor.message = "Acquire",
                bulkhead.max = self.config.max_concurrent as i64,
                bulkhead.in_use = tracing::field::Empty,
                bulkhead.queued = tracing::field::Empty,
                bulkhead.overloaded = tracing::field::Empty,
            )
        });
        let _entered = span.enter();
        let grant = guarded(ctx, NAME, || self.grant(msg.budget))
            .map_err(|_| BulkheadError::Unavailable)?;
        span.record("bulkhead.in_use", self.in_use as i64);
        span.record("bulkhead.queued", matches!(grant, Ok(Grant::Queued { .. })));
        span.record("bulkhead.overloaded", self.admission.overloaded());
        grant
    }
}

impl Handler<Release> for Bulkhead {
    type Result = ();

    /// The slot goes to the first waiter still waiting, else back to the pool.
    fn handle(&mut self, release: Release, ctx: &mut Context<Self>) {
        let _ = guarded(ctx, NAME, || {
            let now = self.clock.now();
            let held = now.saturating_duration_since(release.granted_at);
            let held = release.used.then_some(held);
            self.admission.released(release.granted_at, held);
            let reserve = self.admission.reserve(now);
            while let Some(waiter) = self.waiters.pop_front() {
                match waiter.send(Some(self.permit(now, reserve))) {
                    Ok(()) => return self.admission.handed(now, self.waiters.len()),
                    // That waiter gave up; its permit was never counted.
                    Err(permit) => permit.into_iter().for_each(Permit::disarm),
                }
            }
            self.in_use = self.in_use.saturating_sub(1);
            self.admission.drained();
        });
    }
}

impl Handler<Expired> for Bulkhead {
    type Result = ();

    fn handle(&mut self, _: Expired, ctx: &mut Context<Self>) {
        let _ = guarded(ctx, NAME, || {
            let was_overloaded = self.admission.overloaded();
            let waiting = self.waiting();
            self.admission.expired(self.clock.now(), waiting);
            self.on_overload(was_overloaded);
        });
    }
}

impl Handler<GetStatus> for Bulkhead {
    type Result = Result<Status, ActorFailed>;

    fn handle(&mut self, _: GetStatus, ctx: &mut Context<Self>) -> Self::Result {
        guarded(ctx, NAME, || self.status())
    }
}

impl Handler<Crash> for Bulkhead {
    type Result = Result<(), ActorFailed>;

    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) -> Self::Result {
        guarded(ctx, NAME, || panic!("Bulkhead told to crash"))
    }
}

/// Asks for a permit with `budget` left for the wait and the call, and
/// waits for one as long as the bulkhead says the budget allows.
pub async fn acquire(
    bulkhead: &Addr<Bulkhead>,
    budget: Duration,
    span: Span,
) -> Result<Permit, BulkheadError> {
    let asked = tokio::time::Instant::now();
    let grant = bulkhead
        .send(Acquire { budget, span })
        .await
        .map_err(|_| BulkheadError::Unavailable)??;
    match grant {
        Grant::Ready(permit) => Ok(permit),
        Grant::Refused { error, after } => {
            tokio::time::sleep(after).await;
            Err(error)
        }
        Grant::Queued {
            permit,
            max_wait,
            wait,
        } => match tokio::time::timeout(max_wait, permit).await {
            Ok(Ok(Some(permit))) if budget.saturating_sub(asked.elapsed()) >= permit.reserve => {
                Ok(permit)
            }
            // Handed over too late to call with.
            Ok(Ok(Some(permit))) => {
                permit.give_back();
                expired(bulkhead, wait)
            }
            Ok(Ok(None)) => Err(BulkheadError::Overloaded),
            Ok(Err(_)) => Err(BulkheadError::Unavailable),
            Err(_) => expired(bulkhead, wait),
        },
    }
}

/// A wait ran out: news for the bulkhead if it was predicted to suffice.
fn expired(bulkhead: &Addr<Bulkhead>, wait: Wait) -> Result<Permit, BulkheadError> {
    match wait {
        Wait::Shed => return Err(BulkheadError::Overloaded),
        Wait::Predicted => bulkhead.do_send(Expired),
        Wait::Blind => {}
    }
    Err(BulkheadError::WaitTimedOut)
}

#[cfg(test)]
mod tests {
    use actix::Supervisor;

    use super::*;

    fn start(max_concurrent: usize, max_queue: usize) -> Addr<Bulkhead> {
        Supervisor::start(move |_| {
            Bulkhead::new(BulkheadConfig {
                max_concurrent,
                max_queue,
                ..BulkheadConfig::default()
            })
        })
    }

    /// The same, on a clock the test moves.
    fn start_on(
        clock: &crate::clock::ManualClock,
        max_concurrent: usize,
        max_queue: usize,
    ) -> Addr<Bulkhead> {
        let config = BulkheadConfig {
            max_concurrent,
            max_queue,
            ..BulkheadConfig::default()
        };
        let clock = clock.clone();
        Supervisor::start(move |_| Bulkhead::with_clock(config, Arc::new(clock.clone())))
    }

    async fn status(addr: &Addr<Bulkhead>) -> Status {
        addr.send(GetStatus).await.unwrap().unwrap()
    }

    const WAIT: Duration = Duration::from_millis(250);

    #[actix_rt::test]
    async fn admits_up_to_the_limit_and_returns_slots_on_drop() {
        let addr = start(2, 0);
        let a = acquire(&addr, WAIT, Span::none()).await.unwrap();
        let b = acquire(&addr, WAIT, Span::none()).await.unwrap();
        assert_eq!(status(&addr).await.in_use, 2);
        assert_eq!(
            acquire(&addr, WAIT, Span::none()).await.unwrap_err(),
            BulkheadError::QueueFull
        );
        drop(a);
        let c = acquire(&addr, WAIT, Span::none()).await.unwrap();
        drop((b, c));
        assert_eq!(status(&addr).await.in_use, 0);
    }

    #[actix_rt::test]
    async fn a_waiter_gets_the_next_free_slot() {
        let addr = start(1, 1);
        let held = acquire(&addr, WAIT, Span::none()).await.unwrap();
        let waiter = actix_rt::spawn({
            let addr = addr.clone();
            async move { acquire(&addr, Duration::from_secs(3600), Span::none()).await }
        });
        while status(&addr).await.waiting == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            acquire(&addr, WAIT, Span::none()).await.unwrap_err(),
            BulkheadError::QueueFull
        );
        drop(held);
        let permit = waiter.await.unwrap().unwrap();
        assert_eq!(
            status(&addr).await,
            Status {
                max: 1,
                in_use: 1,
                waiting: 0,
                overloaded: false,
            }
        );
        drop(permit);
        assert_eq!(status(&addr).await.in_use, 0);
    }

    #[actix_rt::test]
    async fn a_wait_ends_after_max_wait_and_leaks_nothing() {
        tokio::time::pause();
        let addr = start(1, 5);
        let held = acquire(&addr, WAIT, Span::none()).await.unwrap();
        let started = tokio::time::Instant::now();
        assert_eq!(
            acquire(&addr, WAIT, Span::none()).await.unwrap_err(),
            BulkheadError::WaitTimedOut
        );
        // The wait ends when what is left of the budget is the call's reserve.
        let waited = started.elapsed();
        let max_wait = WAIT - BulkheadConfig::default().reserve_floor;
        assert!(
            waited >= max_wait && waited <= max_wait + Duration::from_millis(1),
            "{waited:?}"
        );
        // The abandoned place in the queue is not handed the slot (and a wait
        // that had no hold to predict from says nothing about overload).
        drop(held);
        assert_eq!(
            status(&addr).await,
            Status {
                max: 1,
                in_use: 0,
                waiting: 0,
                overloaded: false,
            }
        );
    }

    #[actix_rt::test]
    async fn a_cancelled_request_returns_its_permit() {
        let addr = start(1, 0);
        let request = actix_rt::spawn({
            let addr = addr.clone();
            async move {
                let _permit = acquire(&addr, WAIT, Span::none()).await.unwrap();
                std::future::pending::<()>().await;
            }
        });
        while status(&addr).await.in_use == 0 {
            tokio::task::yield_now().await;
        }
        request.abort();
        let _ = request.await;
        while status(&addr).await.in_use != 0 {
            tokio::task::yield_now().await;
        }
        assert!(acquire(&addr, WAIT, Span::none()).await.is_ok());
    }

    #[actix_rt::test]
    async fn overload_refuses_at_once_the_waiters_whose_turn_comes_after_the_overload_wait() {
        let clock = crate::clock::ManualClock::default();
        let addr = start_on(&clock, 1, 100);
        // Permits held 26 ms each: one turn every 26 ms, 3 within 100 ms.
        for _ in 0..64 {
            let permit = acquire(&addr, WAIT, Span::none()).await.unwrap();
            clock.advance(Duration::from_millis(26));
            drop(permit);
            while status(&addr).await.in_use != 0 {
                tokio::task::yield_now().await;
            }
        }
        let held = acquire(&addr, WAIT, Span::none()).await.unwrap();
        let budget = Duration::from_millis(500);
        let waiters: Vec<_> = (0..10)
            .map(|_| {
                let addr = addr.clone();
                actix_rt::spawn(async move { acquire(&addr, budget, Span::none()).await })
            })
            .collect();
        while status(&addr).await.waiting < 10 {
            tokio::task::yield_now().await;
        }
        // 11th in line, its turn in ~286 ms: a 300 ms budget cannot cover
        // it and a call. The queue failed it, and another in the next
        // window: overload.
        for window in 0..2 {
            clock.advance(Duration::from_millis(50) * window);
            let late = acquire(&addr, Duration::from_millis(300), Span::none()).await;
            assert_eq!(late.unwrap_err(), BulkheadError::WaitTimedOut);
            assert_eq!(status(&addr).await.overloaded, window == 1);
        }
        let now = status(&addr).await;
        assert_eq!(now.waiting, 3);
        let mut refused = 0;
        for waiter in waiters.into_iter().skip(3) {
            assert_eq!(
                waiter.await.unwrap().unwrap_err(),
                BulkheadError::Overloaded
            );
            refused += 1;
        }
        assert_eq!(refused, 7);
        drop(held);
    }

    #[actix_rt::test]
    async fn overloaded_a_full_queue_refuses_no_sooner_than_a_cut_wait() {
        let clock = crate::clock::ManualClock::default();
        let addr = start_on(&clock, 1, 1);
        let held = acquire(&addr, WAIT, Span::none()).await.unwrap();
        let _waiter = actix_rt::spawn({
            let addr = addr.clone();
            async move { acquire(&addr, WAIT, Span::none()).await }
        });
        while status(&addr).await.waiting == 0 {
            tokio::task::yield_now().await;
        }
        let started = std::time::Instant::now();
        let refused = acquire(&addr, WAIT, Span::none()).await;
        assert_eq!(refused.unwrap_err(), BulkheadError::QueueFull);
        assert!(started.elapsed() < Duration::from_millis(50), "at once");
        // Waits ran out in two windows in a row.
        addr.send(Expired).await.unwrap();
        clock.advance(Duration::from_millis(50));
        addr.send(Expired).await.unwrap();
        assert!(status(&addr).await.overloaded);
        let started = std::time::Instant::now();
        let refused = acquire(&addr, WAIT, Span::none()).await;
        assert_eq!(refused.unwrap_err(), BulkheadError::QueueFull);
        let overload_wait = BulkheadConfig::default().overload_wait;
        assert!(
            started.elapsed() >= overload_wait,
            "{:?}",
            started.elapsed()
        );
        drop(held);
    }

    #[actix_rt::test]
    async fn a_restart_keeps_permits_in_use_and_keeps_serving() {
        let addr = start(2, 1);
        let held = acquire(&addr, WAIT, Span::none()).await.unwrap();
        assert!(addr.send(Crash).await.unwrap().is_err());
        assert_eq!(status(&addr).await.in_use, 1);
        let other = acquire(&addr, WAIT, Span::none()).await.unwrap();
        drop((held, other));
        assert_eq!(status(&addr).await.in_use, 0);
    }
}
