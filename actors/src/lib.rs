//! The reliability actors of order-service, as a library: mechanism only.
//! Each actor owns its state, so every change to it is serialized through
//! its mailbox; order-service decides policy (what counts as a failure, how
//! long to wait) and talks to them only by messages.
//!
//! Every message carries the sender's [`tracing::Span`]: an actor's handler
//! runs on the actor's own thread, where the sender's span is not current,
//! so each handler opens its span as an explicit child of the one carried.
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
//!   restart instead of a dead mailbox.

pub mod bulkhead;
pub mod circuit_breaker;
pub mod clock;
pub mod idempotency;
pub mod reconciler;
pub mod supervision;
