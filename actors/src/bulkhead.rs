//! The bulkhead actor: at most `max_concurrent` payment attempts in flight,
//! at most `max_queue` callers waiting for a turn.
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

use std::collections::VecDeque;
use std::time::Duration;

use actix::{Actor, Addr, AsyncContext, Context, Handler, Message, Supervised};
use serde::Serialize;
use tokio::sync::oneshot;
use tracing::Span;

use crate::supervision::{ActorFailed, Crash, guarded};

const NAME: &str = "Bulkhead";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkheadConfig {
    pub max_concurrent: usize,
    pub max_queue: usize,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 10,
            max_queue: 200,
        }
    }
}

/// Why no permit was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkheadError {
    /// `max_queue` callers are already waiting.
    QueueFull,
    /// No slot freed up within the caller's wait.
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
}

impl Permit {
    /// A permit whose drop returns nothing (it was never counted).
    fn disarm(mut self) {
        self.bulkhead = None;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(bulkhead) = self.bulkhead.take() {
            bulkhead.do_send(Release);
        }
    }
}

pub enum Grant {
    Ready(Permit),
    Queued(oneshot::Receiver<Permit>),
}

#[derive(Message)]
#[rtype(result = "Result<Grant, BulkheadError>")]
pub struct Acquire {
    pub span: Span,
}

/// Sent by a dropped [`Permit`].
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Release;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Status {
    pub max: usize,
    pub in_use: usize,
    pub waiting: usize,
}

#[derive(Debug, Message)]
#[rtype(result = "Result<Status, ActorFailed>")]
pub struct GetStatus;

pub struct Bulkhead {
    config: BulkheadConfig,
    in_use: usize,
    waiters: VecDeque<oneshot::Sender<Permit>>,
    /// Our own address, for the permits we hand out.
    me: Option<Addr<Self>>,
}

impl Bulkhead {
    pub fn new(config: BulkheadConfig) -> Self {
        Self {
            config,
            in_use: 0,
            waiters: VecDeque::new(),
            me: None,
        }
    }

    fn permit(&self) -> Permit {
        Permit {
            bulkhead: self.me.clone(),
            in_use: self.in_use,
        }
    }

    fn status(&self) -> Status {
        Status {
            max: self.config.max_concurrent,
            in_use: self.in_use,
            waiting: self.waiters.iter().filter(|w| !w.is_closed()).count(),
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

    /// A permit at once if a slot is free and nobody waits; else a place in
    /// the queue, if there is room.
    fn handle(&mut self, msg: Acquire, ctx: &mut Context<Self>) -> Self::Result {
        let span = crate::child_span(&msg.span, || {
            tracing::info_span!(
                "bulkhead.acquire",
                actor.name = NAME,
                actor.message = "Acquire",
                bulkhead.max = self.config.max_concurrent as i64,
                bulkhead.in_use = tracing::field::Empty,
                bulkhead.queued = tracing::field::Empty,
            )
        });
        let _entered = span.enter();
        let grant = guarded(ctx, NAME, || {
            self.waiters.retain(|w| !w.is_closed());
            if self.in_use < self.config.max_concurrent && self.waiters.is_empty() {
                self.in_use += 1;
                Ok(Grant::Ready(self.permit()))
            } else if self.waiters.len() < self.config.max_queue {
                let (tx, rx) = oneshot::channel();
                self.waiters.push_back(tx);
                Ok(Grant::Queued(rx))
            } else {
                Err(BulkheadError::QueueFull)
            }
        })
        .map_err(|_| BulkheadError::Unavailable)?;
        span.record("bulkhead.in_use", self.in_use as i64);
        span.record("bulkhead.queued", matches!(grant, Ok(Grant::Queued(_))));
        grant
    }
}

impl Handler<Release> for Bulkhead {
    type Result = ();

    /// The slot goes to the first waiter still waiting, else back to the pool.
    fn handle(&mut self, _: Release, ctx: &mut Context<Self>) {
        let _ = guarded(ctx, NAME, || {
            while let Some(waiter) = self.waiters.pop_front() {
                match waiter.send(self.permit()) {
                    Ok(()) => return,
                    // That waiter gave up; its permit was never counted.
                    Err(permit) => permit.disarm(),
                }
            }
            self.in_use = self.in_use.saturating_sub(1);
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

/// Asks for a permit and waits at most `max_wait` for one (the caller
/// passes the smaller of its wait limit and its remaining budget).
pub async fn acquire(
    bulkhead: &Addr<Bulkhead>,
    max_wait: Duration,
    span: Span,
) -> Result<Permit, BulkheadError> {
    let grant = bulkhead
        .send(Acquire { span })
        .await
        .map_err(|_| BulkheadError::Unavailable)??;
    match grant {
        Grant::Ready(permit) => Ok(permit),
        Grant::Queued(rx) => match tokio::time::timeout(max_wait, rx).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(BulkheadError::Unavailable),
            Err(_) => Err(BulkheadError::WaitTimedOut),
        },
    }
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
            })
        })
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
                waiting: 0
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
        let waited = started.elapsed();
        assert!(
            waited >= WAIT && waited <= WAIT + Duration::from_millis(1),
            "{waited:?}"
        );
        // The abandoned place in the queue is not handed the slot.
        drop(held);
        assert_eq!(
            status(&addr).await,
            Status {
                max: 1,
                in_use: 0,
                waiting: 0
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
