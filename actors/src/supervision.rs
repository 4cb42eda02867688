//! Supervision. An actix `Supervisor` restarts an actor that *stops*; a
//! panic inside a handler would instead kill the actor's task and close its
//! mailbox for good. [`guarded`] bridges the two: it catches the panic,
//! stops the actor (the supervisor then calls `restarting()` on the same
//! value and keeps the mailbox), and answers the failed message's sender
//! with [`ActorFailed`]. Every other queued message is still handled.

use std::panic::{AssertUnwindSafe, catch_unwind};

use actix::{Actor, ActorContext, Context, Message};

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
