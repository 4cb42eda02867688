//! The reconciler actor: keeps re-driving every operation whose outcome is
//! unknown until one attempt gives a definitive answer.
//!
//! Mechanism only: what "re-drive" means (charge the order again under the
//! same payment key, then persist what payment said) is the `Redrive`
//! function its owner provides; where the work is found, and when each
//! item falls due, is the store's ([`Claims`]): every tick the actor claims
//! as many due items as it has free slots, at most `max_concurrent` re-drives
//! running at once, so that a backlog after an outage does not stampede the
//! recovering dependency.
//!
//! The store is the schedule, never this actor: an item is due when the
//! store says (after its owner's attempt surely ended, backing off while its
//! outcome stays unknown), and a claim lasts a lease, after which an item
//! not settled meanwhile is due again, for anyone. So nothing depends on an
//! owner telling the actor anything or running to the end; replicas sharing
//! a store share the work without re-driving one item twice at once; and a
//! restart loses only the re-drives that were running, whose items fall due
//! when their leases end.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix::fut::wrap_future;
use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseFuture, Supervised,
};

use crate::supervision::{ActorFailed, Crash, guarded};

const NAME: &str = "Reconciler";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcilerConfig {
    /// How often due items are claimed.
    pub interval: Duration,
    pub max_concurrent: usize,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            max_concurrent: 4,
        }
    }
}

/// Re-drives one claimed item; `attempt` counts from 1. What it learned
/// is the store's to keep.
pub type Redrive<T> = Box<dyn Fn(T, u32) -> Pin<Box<dyn Future<Output = ()>>>>;

/// A future the actor runs on its own thread.
pub type Local<T> = Pin<Box<dyn Future<Output = T>>>;

/// The store the work is kept in, possibly shared by several processes.
pub trait Claims<T>: 'static {
    /// Claims at most `n` due items for this process, each with its attempt
    /// number (from 1); a claim lasts a lease, after which an item not
    /// settled meanwhile is due again, for anyone. Answers nothing when the
    /// store cannot be reached (the next tick tries again).
    fn claim(&self, n: usize) -> Local<Vec<(T, u32)>>;
    /// Items not settled yet, in the whole store.
    fn pending(&self) -> Local<Option<usize>>;
}

/// Claim and run what is due now (the interval timer does it too).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Tick;

/// Items not settled yet, in the store.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, ActorFailed>")]
pub struct PendingCount;

/// A re-drive ended: its slot is free.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Done;

pub struct Reconciler<T: Send + Unpin + 'static> {
    config: ReconcilerConfig,
    redrive: Redrive<T>,
    claims: Box<dyn Claims<T>>,
    running: usize,
    /// A claim is on its way: no second one until it answers.
    claiming: bool,
}

impl<T: Send + Unpin + 'static> Reconciler<T> {
    pub fn new(config: ReconcilerConfig, redrive: Redrive<T>, claims: Box<dyn Claims<T>>) -> Self {
        Self {
            config,
            redrive,
            claims,
            running: 0,
            claiming: false,
        }
    }

    /// Claims as many due items as there are free slots, and re-drives them.
    fn claim_due(&mut self, ctx: &mut Context<Self>) {
        let free = self.config.max_concurrent.saturating_sub(self.running);
        if self.claiming || free == 0 {
            return;
        }
        self.claiming = true;
        let claimed = self.claims.claim(free);
        ctx.spawn(
            wrap_future::<_, Self>(claimed).map(|claimed, reconciler, ctx| {
                reconciler.claiming = false;
                for (payload, attempt) in claimed {
                    reconciler.running += 1;
                    let redrive = (reconciler.redrive)(payload, attempt);
                    ctx.spawn(wrap_future::<_, Self>(redrive).map(|(), _, ctx| ctx.notify(Done)));
                }
            }),
        );
    }
}

impl<T: Send + Unpin + 'static> Actor for Reconciler<T> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.config.interval, |reconciler, ctx| {
            reconciler.claim_due(ctx);
        });
    }
}

impl<T: Send + Unpin + 'static> Supervised for Reconciler<T> {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // The running re-drives and a claim on its way died with the old
        // context; their items fall due again when their leases end.
        self.running = 0;
        self.claiming = false;
    }
}

impl<T: Send + Unpin + 'static> Handler<Done> for Reconciler<T> {
    type Result = ();

    fn handle(&mut self, _: Done, _: &mut Context<Self>) {
        self.running = self.running.saturating_sub(1);
    }
}

impl<T: Send + Unpin + 'static> Handler<Tick> for Reconciler<T> {
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        self.claim_due(ctx);
    }
}

impl<T: Send + Unpin + 'static> Handler<PendingCount> for Reconciler<T> {
    type Result = ResponseFuture<Result<usize, ActorFailed>>;

    fn handle(&mut self, _: PendingCount, _: &mut Context<Self>) -> Self::Result {
        let pending = self.claims.pending();
        // Unknown (store unreachable) reads as an error, never as zero.
        Box::pin(async move { pending.await.ok_or(ActorFailed { actor: NAME }) })
    }
}

impl<T: Send + Unpin + 'static> Handler<Crash> for Reconciler<T> {
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

    use actix::{Addr, Supervisor};

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    /// (item, attempt) of every re-drive, in order.
    type Log = Rc<RefCell<Vec<(String, u32)>>>;

    /// How many items each claim asked for, in order.
    type Asked = Rc<RefCell<Vec<usize>>>;

    /// A re-drive that logs what it was asked; the first one never ends
    /// when `first_hangs` (it keeps its slot).
    fn logged(first_hangs: bool) -> (Redrive<String>, Log) {
        let log: Log = Rc::default();
        let seen = log.clone();
        let redrive: Redrive<String> = Box::new(move |item, attempt| {
            let first = seen.borrow().is_empty();
            seen.borrow_mut().push((item, attempt));
            Box::pin(async move {
                if first && first_hangs {
                    std::future::pending::<()>().await;
                }
            })
        });
        (redrive, log)
    }

    /// A store's claims, answered from a script; logs how many were asked.
    struct ScriptedClaims {
        batches: RefCell<VecDeque<Vec<(String, u32)>>>,
        asked: Asked,
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

    /// A reconciler of `max_concurrent` slots on scripted claims; answers
    /// it, what its claims were asked, and what it re-drove.
    fn start(
        batches: Vec<Vec<(String, u32)>>,
        max_concurrent: usize,
        first_hangs: bool,
    ) -> (Addr<Reconciler<String>>, Asked, Log) {
        let (redrive, log) = logged(first_hangs);
        let asked = Asked::default();
        let claims = ScriptedClaims {
            batches: RefCell::new(VecDeque::from(batches)),
            asked: asked.clone(),
        };
        // The timer never fires in these tests: they send Tick.
        let config = ReconcilerConfig {
            interval: HOUR,
            max_concurrent,
        };
        let claims = RefCell::new(Some(Box::new(claims) as Box<dyn Claims<String>>));
        let redrive = RefCell::new(Some(redrive));
        let addr = Supervisor::start(move |_| {
            Reconciler::new(
                config,
                redrive.borrow_mut().take().expect("started once"),
                claims.borrow_mut().take().expect("started once"),
            )
        });
        (addr, asked, log)
    }

    async fn tick(addr: &Addr<Reconciler<String>>) {
        addr.send(Tick).await.unwrap();
        // Let the claim answer and the re-drives run and report back.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    fn item(name: &str, attempt: u32) -> (String, u32) {
        (name.into(), attempt)
    }

    #[actix_rt::test]
    async fn it_re_drives_what_it_claims_within_its_free_slots() {
        let batches = vec![vec![item("a", 1), item("b", 4)], vec![item("c", 2)]];
        let (addr, asked, log) = start(batches, 3, true);
        tick(&addr).await;
        assert_eq!(*log.borrow(), [item("a", 1), item("b", 4)]);
        // "a" still runs: two free slots.
        tick(&addr).await;
        assert_eq!(*asked.borrow(), [3, 2]);
        assert_eq!(log.borrow()[2], item("c", 2));
        assert_eq!(
            addr.send(PendingCount).await.unwrap().unwrap(),
            7,
            "the store's count"
        );
    }

    #[actix_rt::test]
    async fn with_every_slot_taken_it_claims_nothing() {
        let (addr, asked, log) = start(vec![vec![item("a", 1)], vec![item("b", 1)]], 1, true);
        tick(&addr).await;
        tick(&addr).await;
        assert_eq!(*asked.borrow(), [1], "no claim while its one slot runs");
        assert_eq!(*log.borrow(), [item("a", 1)]);
    }

    #[actix_rt::test]
    async fn a_restart_frees_the_slots_of_the_re_drives_that_died_with_it() {
        let (addr, asked, log) = start(vec![vec![item("a", 1)], vec![item("a", 2)]], 1, true);
        tick(&addr).await;
        assert!(addr.send(Crash).await.unwrap().is_err());
        // The store makes "a" due again after its lease; here, at once.
        tick(&addr).await;
        assert_eq!(*asked.borrow(), [1, 1]);
        assert_eq!(*log.borrow(), [item("a", 1), item("a", 2)]);
    }
}
