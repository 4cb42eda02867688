//! The reliability actors of order-service, as a library: mechanism only.
//! Each actor owns its state, so every change to it is serialized through
//! its mailbox; order-service decides policy (what counts as a failure, how
//! long to wait) and talks to them only by messages.
//!
//! Every message carries the sender's [`tracing::Span`]: an actor's handler
//! runs in the actor's own task (on another thread, or later on the
//! sender's), where the sender's span is not current,
//! so each handler opens its span inside the one carried ([`child_span`]).
//!
//! # Layout
//! - [`circuit_breaker`]: admission and outcomes of payment attempts; its
//!   pure state machine is [`circuit_breaker::machine`].
//! - [`bulkhead`]: a bounded number of attempts in flight, with a bounded,
//!   time-limited queue; permits are guards returned on drop.
//! - [`idempotency`]: reserve / complete / release of client keys, with TTL
//!   sweep and a hard capacity.
//! - [`reconciler`]: re-drives operations whose outcome is unknown until
//!   it is known, with backoff and bounded concurrency.
//! - [`clock`]: the injectable clock every time-based decision reads.
//! - [`supervision`]: turns a panic inside a handler into a supervised
//!   restart instead of a dead mailbox; gives an address before the thread
//!   that will run its actor exists.

use tracing::Span;

/// The handler's span for a message sent from within `sender`: created in
/// the sender's scope, so that it is the sender's child for every layer and
/// filter (the traces' sampling follows the span current at creation, not a
/// `parent:` argument); none when the sender's span is (nothing traced, or
/// a trace not sampled).
pub fn child_span(sender: &Span, make: impl FnOnce() -> Span) -> Span {
    if sender.is_disabled() {
        Span::none()
    } else {
        sender.in_scope(make)
    }
}

pub mod bulkhead;
pub mod circuit_breaker;
pub mod clock;
pub mod idempotency;
pub mod reconciler;
pub mod supervision;
