//! The idempotency store actor: one operation per client `Idempotency-Key`.
//!
//! - `Reserve` with the body's fingerprint and a candidate order id: a new
//!   key is taken (in flight) for that order; a key in flight answers
//!   `InFlight` (409); a different body `Mismatch` (422); a completed key
//!   its stored response (`Replay`); a released key is taken again with its
//!   *original* order id (`Resume`), so the retry charges under the same
//!   payment key and cannot double-charge.
//! - `Complete` stores the response to replay; `Release` (after a transient
//!   failure) frees the key but keeps its order id.
//! - A key in flight is held by one [`Holder`] under a lease: `Complete` and
//!   `Release` from anyone else are ignored, and a lease unreleased for
//!   `lease` (its holder's release was lost, or its process died) is taken
//!   over by the next `Reserve`, which resumes the same order id.
//! - [`KeyLease::reserve`] makes the guard *before* the `Reserve` is sent,
//!   so a caller dropped while waiting for the reply leaves nothing held:
//!   actix skips a queued message whose reply nobody awaits any more, and a
//!   reservation already handled is released by the guard's drop.
//!
//! Where the records live is the [`KeyBackend`]'s business: in this
//! process ([`MemoryKeys`]), or in a database shared by replicas. A backend
//! may write more than the key in the same transaction: a `Record` with a
//! new reservation (the order it starts) and an [`Effect`] with the
//! completion (the order's outcome), so that a key is never taken without
//! its order nor completed without its outcome. The messages are the API;
//! the actor gives every backend the same mailbox, spans and supervision.
//! Its handlers only start the backend's work, so a slow database never
//! holds the mailbox: the backend makes each operation atomic on its own.

mod lease;
mod memory;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix::fut::wrap_future;
use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseFuture, Supervised,
};
use serde::Serialize;
use tracing::{Instrument, Span};
use uuid::Uuid;

pub use lease::KeyLease;
pub use memory::MemoryKeys;

use crate::supervision::{ActorFailed, Crash, guarded};

const NAME: &str = "IdempotencyStore";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencyConfig {
    pub ttl: Duration,
    pub max_keys: usize,
    pub sweep_every: Duration,
    /// How long a key stays in flight without word from its holder before
    /// another request may take it over.
    pub lease: Duration,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(24 * 3600),
            max_keys: 1_000_000,
            sweep_every: Duration::from_secs(60),
            lease: Duration::from_secs(10),
        }
    }
}

/// A response as it will be replayed: opaque to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Who holds a key in flight: one per reservation attempt, unique across
/// processes (replicas share a database's keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Holder(Uuid);

impl Holder {
    pub fn next() -> Self {
        Self(Uuid::new_v4())
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

/// What a `Reserve` found, `I` being the backend's order id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation<I = String> {
    /// The key is new and now in flight for the candidate order id.
    New,
    /// The key was released after a transient failure (or its holder went
    /// silent) and is in flight again, for the order id it had.
    Resume { order_id: I },
    /// The same key is being processed right now, for this order id (none:
    /// the backend cannot name an order that can be read yet).
    InFlight { order_id: Option<I> },
    /// The key was used with a different body.
    Mismatch,
    /// The key's operation completed; answer what it answered.
    Replay(Arc<StoredResponse>),
    /// The store holds `max_keys` records.
    Full,
}

/// The backend's own error, kept whole (its caller may look at what it
/// is): for logs and decisions, never for clients.
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// Why a message got no answer.
#[derive(Debug, Clone)]
pub enum KeyStoreError {
    /// The actor failed while handling it and restarts: the operation may
    /// or may not have been done.
    Failed(ActorFailed),
    /// The backend could not be reached, or refused: nothing was done.
    Unavailable(Cause),
    /// The backend did not answer (in time): the operation may have been
    /// done, or may still be, later.
    Uncertain(Cause),
}

impl KeyStoreError {
    /// Whether the operation may have taken effect although it failed.
    pub fn may_have_happened(&self) -> bool {
        !matches!(self, Self::Unavailable(_))
    }

    /// The backend's error, if it answered one.
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match self {
            Self::Failed(_) => None,
            Self::Unavailable(cause) | Self::Uncertain(cause) => Some(cause.as_ref()),
        }
    }
}

impl std::fmt::Display for KeyStoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed(failed) => failed.fmt(f),
            Self::Unavailable(cause) => write!(f, "idempotency store unavailable: {cause}"),
            Self::Uncertain(cause) => write!(f, "idempotency store did not answer: {cause}"),
        }
    }
}

impl std::error::Error for KeyStoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause().map(|cause| cause as _)
    }
}

impl From<ActorFailed> for KeyStoreError {
    fn from(failed: ActorFailed) -> Self {
        Self::Failed(failed)
    }
}

/// A backend's answer, computed off the actor's mailbox.
pub type Answer<T> = Pin<Box<dyn Future<Output = Result<T, KeyStoreError>>>>;

/// What a completion writes beside the key, in the same transaction.
pub trait Effect: Send + 'static {
    /// The write's answer when it is refused; the key is then not completed.
    type Refused: Send + 'static;
}

/// Nothing beside the key.
impl Effect for () {
    type Refused = std::convert::Infallible;
}

/// Where the records live. Each operation is atomic on its own: several
/// run at once (the actor does not wait for one to end to start the next).
pub trait KeyBackend: Unpin + 'static {
    /// The id of the operation a key starts (an order's).
    type Id: Clone + std::fmt::Debug + Send + 'static;
    /// Written with a reservation that starts a new operation (`New`).
    type Record: Send + 'static;
    /// Written with the completion, which happens only if the write does.
    type Effect: Effect;

    fn reserve(&self, msg: Reserve<Self::Record, Self::Id>) -> Answer<Reservation<Self::Id>>;
    fn complete(&self, msg: Complete<Self::Effect>) -> Answer<Completion<Self::Effect>>;
    fn release(&self, msg: Release) -> Answer<()>;
    /// Removes the records older than the TTL; answers how many.
    fn sweep(&self) -> Answer<usize>;
    fn stats(&self) -> Answer<Stats>;
}

/// A boxed backend is a backend (the actor's type need not name which).
impl<B: KeyBackend + ?Sized> KeyBackend for Box<B> {
    type Id = B::Id;
    type Record = B::Record;
    type Effect = B::Effect;

    fn reserve(&self, msg: Reserve<Self::Record, Self::Id>) -> Answer<Reservation<Self::Id>> {
        (**self).reserve(msg)
    }
    fn complete(&self, msg: Complete<Self::Effect>) -> Answer<Completion<Self::Effect>> {
        (**self).complete(msg)
    }
    fn release(&self, msg: Release) -> Answer<()> {
        (**self).release(msg)
    }
    fn sweep(&self) -> Answer<usize> {
        (**self).sweep()
    }
    fn stats(&self) -> Answer<Stats> {
        (**self).stats()
    }
}

/// Completed, or the effect's write refused (the key stays in flight).
pub type Completion<E> = Result<(), <E as Effect>::Refused>;

#[derive(Debug)]
pub struct Reserve<R, I = String> {
    pub key: String,
    pub fingerprint: String,
    pub order_id: I,
    pub holder: Holder,
    pub record: R,
    pub span: Span,
}

impl<R: Send + 'static, I: Send + 'static> Message for Reserve<R, I> {
    type Result = Result<Reservation<I>, KeyStoreError>;
}

#[derive(Debug)]
pub struct Complete<E> {
    pub key: String,
    pub holder: Holder,
    pub response: StoredResponse,
    pub effect: E,
    pub span: Span,
}

impl<E: Effect> Message for Complete<E> {
    type Result = Result<Completion<E>, KeyStoreError>;
}

#[derive(Debug, Message)]
#[rtype(result = "Result<(), KeyStoreError>")]
pub struct Release {
    pub key: String,
    pub holder: Holder,
    pub span: Span,
}

/// Removes expired records now; answers how many.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, KeyStoreError>")]
pub struct Sweep;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub entries: usize,
    pub in_flight: usize,
    pub completed: usize,
    pub released: usize,
}

#[derive(Debug, Message)]
#[rtype(result = "Result<Stats, KeyStoreError>")]
pub struct GetStats;

pub struct IdempotencyStore<B: KeyBackend> {
    backend: B,
    sweep_every: Duration,
}

impl<B: KeyBackend> IdempotencyStore<B> {
    /// The backend owns the records: a restart of the actor keeps them.
    pub fn new(backend: B, sweep_every: Duration) -> Self {
        Self {
            backend,
            sweep_every,
        }
    }

    /// Starts `work` on the backend inside the message's span, as a guarded
    /// step (a panic restarts the actor and answers `Failed`).
    fn begin<T: 'static>(
        &self,
        ctx: &mut Context<Self>,
        span: Span,
        work: impl FnOnce(&B) -> Answer<T>,
    ) -> ResponseFuture<Result<T, KeyStoreError>> {
        let started = {
            let _entered = span.enter();
            guarded(ctx, NAME, || work(&self.backend))
        };
        Box::pin(
            async move {
                match started {
                    Ok(answer) => answer.await,
                    Err(failed) => Err(failed.into()),
                }
            }
            .instrument(span),
        )
    }
}

impl<B: KeyBackend> Actor for IdempotencyStore<B> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.sweep_every, |store, ctx| {
            let sweep = store.backend.sweep();
            ctx.spawn(
                wrap_future::<_, Self>(sweep).map(|swept, _, _| match swept {
                    Ok(0) => {}
                    Ok(removed) => tracing::debug!(removed, "expired idempotency records swept"),
                    Err(e) => tracing::warn!(error = %e, "idempotency sweep failed; next time"),
                }),
            );
        });
    }
}

/// The records are the backend's: a restart keeps them all.
impl<B: KeyBackend> Supervised for IdempotencyStore<B> {}

fn actor_span(parent: &Span, message: &'static str, name: &'static str, key: &str) -> Span {
    crate::child_span(parent, || {
        tracing::info_span!(
            "idempotency",
            otel.name = name,
            actor.name = NAME,
            actor.message = message,
            idempotency.key = key,
            idempotency.outcome = tracing::field::Empty,
        )
    })
}

impl<B: KeyBackend> Handler<Reserve<B::Record, B::Id>> for IdempotencyStore<B> {
    type Result = ResponseFuture<Result<Reservation<B::Id>, KeyStoreError>>;

    fn handle(&mut self, msg: Reserve<B::Record, B::Id>, ctx: &mut Context<Self>) -> Self::Result {
        let span = actor_span(&msg.span, "Reserve", "idempotency.reserve", &msg.key);
        let answer = self.begin(ctx, span.clone(), |backend| backend.reserve(msg));
        Box::pin(async move {
            let reservation = answer.await;
            if let Ok(reservation) = &reservation {
                let outcome = format!("{reservation:?}");
                span.record("idempotency.outcome", outcome.split(['(', ' ']).next());
            }
            reservation
        })
    }
}

impl<B: KeyBackend> Handler<Complete<B::Effect>> for IdempotencyStore<B> {
    type Result = ResponseFuture<Result<Completion<B::Effect>, KeyStoreError>>;

    fn handle(&mut self, msg: Complete<B::Effect>, ctx: &mut Context<Self>) -> Self::Result {
        let span = actor_span(&msg.span, "Complete", "idempotency.complete", &msg.key);
        self.begin(ctx, span, |backend| backend.complete(msg))
    }
}

impl<B: KeyBackend> Handler<Release> for IdempotencyStore<B> {
    type Result = ResponseFuture<Result<(), KeyStoreError>>;

    fn handle(&mut self, msg: Release, ctx: &mut Context<Self>) -> Self::Result {
        let span = actor_span(&msg.span, "Release", "idempotency.release", &msg.key);
        self.begin(ctx, span, |backend| backend.release(msg))
    }
}

impl<B: KeyBackend> Handler<Sweep> for IdempotencyStore<B> {
    type Result = ResponseFuture<Result<usize, KeyStoreError>>;

    fn handle(&mut self, _: Sweep, ctx: &mut Context<Self>) -> Self::Result {
        self.begin(ctx, Span::none(), |backend| backend.sweep())
    }
}

impl<B: KeyBackend> Handler<GetStats> for IdempotencyStore<B> {
    type Result = ResponseFuture<Result<Stats, KeyStoreError>>;

    fn handle(&mut self, _: GetStats, ctx: &mut Context<Self>) -> Self::Result {
        self.begin(ctx, Span::none(), |backend| backend.stats())
    }
}

impl<B: KeyBackend> Handler<Crash> for IdempotencyStore<B> {
    type Result = Result<(), ActorFailed>;

    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) -> Self::Result {
        guarded(ctx, NAME, || panic!("IdempotencyStore told to crash"))
    }
}

#[cfg(test)]
mod tests {
    use actix::{Addr, Supervisor};

    use super::*;
    use crate::clock::{ManualClock, SharedClock};

    struct Fixture {
        addr: Addr<IdempotencyStore<MemoryKeys>>,
        clock: ManualClock,
        /// Who reserved each key last, as a handler would remember it.
        holders: std::cell::RefCell<std::collections::HashMap<String, Holder>>,
    }

    fn start(max_keys: usize) -> Fixture {
        let clock = ManualClock::default();
        let shared: SharedClock = Arc::new(clock.clone());
        let config = IdempotencyConfig {
            ttl: Duration::from_secs(3600),
            max_keys,
            sweep_every: Duration::from_secs(3600 * 24 * 365),
            lease: Duration::from_secs(10),
        };
        let keys = MemoryKeys::new(config, shared);
        let addr = Supervisor::start(move |_| IdempotencyStore::new(keys, config.sweep_every));
        Fixture {
            addr,
            clock,
            holders: Default::default(),
        }
    }

    impl Fixture {
        async fn reserve(&self, key: &str, fingerprint: &str, order_id: &str) -> Reservation {
            let holder = Holder::next();
            let reservation = self
                .addr
                .send(Reserve {
                    key: key.into(),
                    fingerprint: fingerprint.into(),
                    order_id: order_id.into(),
                    holder,
                    record: (),
                    span: Span::none(),
                })
                .await
                .unwrap()
                .unwrap();
            if matches!(reservation, Reservation::New | Reservation::Resume { .. }) {
                self.holders.borrow_mut().insert(key.into(), holder);
            }
            reservation
        }

        fn holder(&self, key: &str) -> Holder {
            self.holders.borrow()[key]
        }

        async fn complete(&self, key: &str, body: &str) {
            self.complete_as(key, self.holder(key), body).await;
        }

        async fn complete_as(&self, key: &str, holder: Holder, body: &str) {
            self.addr
                .send(Complete {
                    key: key.into(),
                    holder,
                    response: response(body),
                    effect: (),
                    span: Span::none(),
                })
                .await
                .unwrap()
                .unwrap()
                .unwrap();
        }

        async fn release(&self, key: &str) {
            self.release_as(key, self.holder(key)).await;
        }

        async fn release_as(&self, key: &str, holder: Holder) {
            self.addr
                .send(Release {
                    key: key.into(),
                    holder,
                    span: Span::none(),
                })
                .await
                .unwrap()
                .unwrap();
        }

        async fn stats(&self) -> Stats {
            self.addr.send(GetStats).await.unwrap().unwrap()
        }
    }

    fn response(body: &str) -> StoredResponse {
        StoredResponse {
            status: 201,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        }
    }

    #[actix_rt::test]
    async fn a_new_key_is_reserved_and_a_second_reserve_sees_it_in_flight() {
        let f = start(10);
        assert_eq!(f.reserve("k", "body", "o1").await, Reservation::New);
        assert_eq!(
            f.reserve("k", "body", "o2").await,
            Reservation::InFlight {
                order_id: Some("o1".into())
            }
        );
    }

    #[actix_rt::test]
    async fn a_completed_key_replays_its_response() {
        let f = start(10);
        f.reserve("k", "body", "o1").await;
        f.complete("k", "first answer").await;
        assert_eq!(
            f.reserve("k", "body", "o2").await,
            Reservation::Replay(Arc::new(response("first answer")))
        );
    }

    #[actix_rt::test]
    async fn a_different_body_is_a_mismatch_in_every_phase() {
        let f = start(10);
        f.reserve("k", "body", "o1").await;
        assert_eq!(f.reserve("k", "other", "o2").await, Reservation::Mismatch);
        f.release("k").await;
        assert_eq!(f.reserve("k", "other", "o2").await, Reservation::Mismatch);
        f.reserve("k", "body", "o2").await;
        f.complete("k", "done").await;
        assert_eq!(f.reserve("k", "other", "o2").await, Reservation::Mismatch);
    }

    #[actix_rt::test]
    async fn a_released_key_resumes_with_its_original_order_id() {
        let f = start(10);
        f.reserve("k", "body", "o1").await;
        f.release("k").await;
        assert_eq!(
            f.reserve("k", "body", "o2").await,
            Reservation::Resume {
                order_id: "o1".into()
            }
        );
        assert_eq!(
            f.reserve("k", "body", "o3").await,
            Reservation::InFlight {
                order_id: Some("o1".into())
            }
        );
    }

    #[actix_rt::test]
    async fn a_late_release_does_not_undo_a_completion() {
        let f = start(10);
        f.reserve("k", "body", "o1").await;
        f.complete("k", "done").await;
        f.release("k").await;
        assert!(matches!(
            f.reserve("k", "body", "o2").await,
            Reservation::Replay(_)
        ));
    }

    #[actix_rt::test]
    async fn records_expire_after_the_ttl() {
        let f = start(10);
        f.reserve("k", "body", "o1").await;
        f.complete("k", "done").await;
        f.clock.advance(Duration::from_secs(3599));
        assert_eq!(f.addr.send(Sweep).await.unwrap().unwrap(), 0);
        f.clock.advance(Duration::from_secs(1));
        assert_eq!(f.addr.send(Sweep).await.unwrap().unwrap(), 1);
        assert_eq!(f.reserve("k", "other body", "o2").await, Reservation::New);
    }

    #[actix_rt::test]
    async fn the_ttl_counts_from_the_last_reservation() {
        let f = start(10);
        f.reserve("k", "body", "o1").await;
        f.release("k").await;
        f.clock.advance(Duration::from_secs(3599));
        f.reserve("k", "body", "o2").await;
        f.release("k").await;
        f.clock.advance(Duration::from_secs(1));
        assert_eq!(
            f.addr.send(Sweep).await.unwrap().unwrap(),
            0,
            "resumed a second ago"
        );
        f.clock.advance(Duration::from_secs(3599));
        assert_eq!(f.addr.send(Sweep).await.unwrap().unwrap(), 1);
    }

    #[actix_rt::test]
    async fn when_full_new_keys_are_refused_and_old_ones_still_replay() {
        let f = start(2);
        f.reserve("a", "body", "o1").await;
        f.complete("a", "done").await;
        f.reserve("b", "body", "o2").await;
        assert_eq!(f.reserve("c", "body", "o3").await, Reservation::Full);
        assert!(matches!(
            f.reserve("a", "body", "o4").await,
            Reservation::Replay(_)
        ));
        assert_eq!(
            f.reserve("b", "body", "o4").await,
            Reservation::InFlight {
                order_id: Some("o2".into())
            }
        );
        assert_eq!(f.stats().await.entries, 2);
    }

    #[actix_rt::test]
    async fn a_dropped_lease_releases_its_key() {
        let f = start(10);
        let (lease, reply) = KeyLease::reserve(
            &f.addr,
            "k".into(),
            "body".into(),
            "o1".into(),
            (),
            Span::none(),
        )
        .await;
        assert_eq!(reply.unwrap(), Reservation::New);
        drop(lease);
        assert_eq!(
            f.reserve("k", "body", "o2").await,
            Reservation::Resume {
                order_id: "o1".into()
            }
        );
    }

    /// A reservation whose caller is dropped after sending it, before the
    /// reply: actix skips a queued message whose reply nobody awaits any
    /// more, but handles one already taken from the mailbox. Either way the
    /// key must not stay in flight.
    #[actix_rt::test]
    async fn a_reservation_dropped_before_its_reply_never_leaves_the_key_in_flight() {
        for handled_before_the_drop in [false, true] {
            let f = start(10);
            let reserving = KeyLease::reserve(
                &f.addr,
                "k".into(),
                "body".into(),
                "o1".into(),
                (),
                Span::none(),
            );
            let mut reserving = Box::pin(reserving);
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(
                reserving.as_mut().poll(&mut cx).is_pending(),
                "sent, no reply yet"
            );
            if handled_before_the_drop {
                // The mailbox is FIFO: once this is answered, so was the Reserve.
                assert_eq!(f.stats().await.in_flight, 1);
            }
            drop(reserving);
            let expected = if handled_before_the_drop {
                Reservation::Resume {
                    order_id: "o1".into(),
                }
            } else {
                Reservation::New
            };
            assert_eq!(f.reserve("k", "body", "o2").await, expected);
        }
    }

    #[actix_rt::test]
    async fn a_lease_that_was_not_granted_releases_nothing() {
        let f = start(10);
        assert_eq!(f.reserve("k", "body", "o1").await, Reservation::New);
        let (lease, reply) = KeyLease::reserve(
            &f.addr,
            "k".into(),
            "body".into(),
            "o2".into(),
            (),
            Span::none(),
        )
        .await;
        assert_eq!(
            reply.unwrap(),
            Reservation::InFlight {
                order_id: Some("o1".into())
            }
        );
        assert!(lease.is_none());
        // A stray release by anyone but the holder changes nothing either.
        f.release_as("k", Holder::next()).await;
        f.complete_as("k", Holder::next(), "forged").await;
        assert_eq!(
            f.reserve("k", "body", "o3").await,
            Reservation::InFlight {
                order_id: Some("o1".into())
            }
        );
        assert_eq!(f.stats().await.in_flight, 1);
    }

    #[actix_rt::test]
    async fn a_lease_gone_silent_is_taken_over_with_the_same_order_id() {
        let f = start(10);
        f.reserve("k", "body", "o1").await;
        let first = f.holder("k");
        f.clock.advance(Duration::from_secs(9));
        assert_eq!(
            f.reserve("k", "body", "o2").await,
            Reservation::InFlight {
                order_id: Some("o1".into())
            }
        );
        f.clock.advance(Duration::from_secs(1));
        assert_eq!(
            f.reserve("k", "body", "o3").await,
            Reservation::Resume {
                order_id: "o1".into()
            }
        );
        // The first holder's late word no longer counts; the new holder's does.
        f.release_as("k", first).await;
        assert_eq!(
            f.reserve("k", "body", "o4").await,
            Reservation::InFlight {
                order_id: Some("o1".into())
            }
        );
        f.complete("k", "done").await;
        assert!(matches!(
            f.reserve("k", "body", "o5").await,
            Reservation::Replay(_)
        ));
    }

    #[actix_rt::test]
    async fn a_restart_loses_no_record() {
        let f = start(10);
        f.reserve("done", "body", "o1").await;
        f.complete("done", "answer").await;
        f.reserve("flying", "body", "o2").await;
        assert!(f.addr.send(Crash).await.unwrap().is_err());
        assert!(matches!(
            f.reserve("done", "body", "o3").await,
            Reservation::Replay(_)
        ));
        assert_eq!(
            f.reserve("flying", "body", "o3").await,
            Reservation::InFlight {
                order_id: Some("o2".into())
            }
        );
        assert_eq!(
            f.stats().await,
            Stats {
                entries: 2,
                in_flight: 1,
                completed: 1,
                released: 0
            }
        );
    }
}
