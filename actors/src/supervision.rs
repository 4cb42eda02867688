//! Supervision. An actix `Supervisor` restarts an actor that *stops*; a
//! panic inside a handler would instead kill the actor's task and close its
//! mailbox for good. [`guarded`] bridges the two: it catches the panic,
//! stops the actor (the supervisor then calls `restarting()` on the same
//! value and keeps the mailbox), and answers the failed message's sender
//! with [`ActorFailed`]. Every other queued message is still handled.
//!
//! [`mailbox`] gives an actor's address before the thread that will run it
//! exists: order-service runs its actors on its first HTTP worker, so that
//! worker's messages to them cost no thread wake-up, yet every worker's app
//! is built with the addresses.

use std::future::poll_fn;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::Poll;

use actix::dev::channel::{self, AddressReceiver};
use actix::{Actor, ActorContext, Addr, Context, Message, Supervised};

/// Messages sent to an address whose actor has not started yet wait here;
/// past this many, a `send` waits for room (a `do_send` does not).
const CAPACITY: usize = 16;

/// The address of an actor that is not running yet, and its mailbox.
pub fn mailbox<A: Actor<Context = Context<A>>>() -> (Addr<A>, Mailbox<A>) {
    let (sender, receiver) = channel::channel(CAPACITY);
    (Addr::new(sender), Mailbox(receiver))
}

/// The mailbox of an address made by [`mailbox`]: whoever holds it may run
/// the actor, on the thread that calls [`Mailbox::supervise`].
pub struct Mailbox<A: Actor>(AddressReceiver<A>);

impl<A> Mailbox<A>
where
    A: Supervised + Actor<Context = Context<A>>,
{
    /// Runs the actor `make` builds on the current arbiter, restarted on the
    /// same mailbox whenever it stops, as `actix::Supervisor` does, until
    /// every address is gone.
    pub fn supervise(self, make: impl FnOnce(&mut Context<A>) -> A) {
        let mut ctx = Context::with_receiver(self.0);
        let actor = make(&mut ctx);
        let mut running = ctx.into_future(actor);
        actix::spawn(poll_fn(move |cx| {
            loop {
                match Pin::new(&mut running).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) if !running.restart() => return Poll::Ready(()),
                    Poll::Ready(()) => {}
                }
            }
        }));
    }
}

/// The message being handled when the actor failed; the actor restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActorFailed {
    pub actor: &'static str,
}

impl std::fmt::Display for ActorFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} failed while handling the message and restarts",
            self.actor
        )
    }
}

impl std::error::Error for ActorFailed {}

/// Runs a handler's body; on panic, stops the actor for its supervisor.
pub fn guarded<A, R>(
    ctx: &mut Context<A>,
    actor: &'static str,
    body: impl FnOnce() -> R,
) -> Result<R, ActorFailed>
where
    A: Actor<Context = Context<A>>,
{
    catch_unwind(AssertUnwindSafe(body)).map_err(|_| {
        tracing::error!(
            actor.name = actor,
            "actor panicked in a handler; restarting it"
        );
        ctx.stop();
        ActorFailed { actor }
    })
}

/// Makes an actor panic inside a handler. For supervision tests and drills
/// only: nothing in the services sends it.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), ActorFailed>")]
pub struct Crash;

#[cfg(test)]
mod tests {
    use std::thread::{self, ThreadId};

    use actix::{Arbiter, Handler};

    use super::*;

    /// Counts what it handled, and says on which thread.
    struct Probe {
        handled: u32,
    }

    impl Actor for Probe {
        type Context = Context<Self>;
    }

    impl Supervised for Probe {}

    #[derive(Message)]
    #[rtype(result = "(ThreadId, u32)")]
    struct Where;

    impl Handler<Where> for Probe {
        type Result = actix::MessageResult<Where>;
        fn handle(&mut self, _: Where, _: &mut Context<Self>) -> Self::Result {
            self.handled += 1;
            actix::MessageResult((thread::current().id(), self.handled))
        }
    }

    impl Handler<Crash> for Probe {
        type Result = Result<(), ActorFailed>;
        fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) -> Self::Result {
            guarded(ctx, "probe", || panic!("drill"))
        }
    }

    #[actix_rt::test]
    async fn an_address_made_first_is_served_where_the_actor_runs_and_across_restarts() {
        let (address, mailbox) = mailbox::<Probe>();
        let asked_early = address.send(Where);
        let host = Arbiter::new();
        host.spawn_fn(move || mailbox.supervise(|_| Probe { handled: 0 }));

        let (thread, handled) = asked_early.await.unwrap();
        assert_ne!(thread, thread::current().id(), "runs on the host's thread");
        assert_eq!(
            handled, 1,
            "the message sent before the actor ran waited for it"
        );

        let crashed = address.send(Crash).await.unwrap();
        assert_eq!(crashed, Err(ActorFailed { actor: "probe" }));
        let (after, handled) = address.send(Where).await.unwrap();
        assert_eq!(after, thread, "restarted on the same thread");
        assert_eq!(handled, 2, "the same actor, restarted on the same mailbox");
        assert!(address.connected());
        host.stop();
    }
}
