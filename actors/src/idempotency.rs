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
//!   `lease` (its holder's release was lost) is taken over by the next
//!   `Reserve`, which resumes the same order id.
//! - [`KeyLease::reserve`] makes the guard *before* the `Reserve` is sent,
//!   so a caller dropped while waiting for the reply leaves nothing held:
//!   actix skips a queued message whose reply nobody awaits any more, and a
//!   reservation already handled is released by the guard's drop, whose
//!   `Release` queues behind it.
//! - Records expire `ttl` after creation (swept every `sweep_every`), and at
//!   most `max_keys` exist: when full, new keys are refused (`Full`, 503)
//!   while existing ones still replay, so memory never grows without bound.
//!
//! The records live in a [`Records`] handle owned outside the actor, so a
//! supervised restart loses none; the message being handled when the actor
//! failed is lost (its sender gets [`ActorFailed`]). The messages are the
//! API: nothing in them assumes the records are in memory, so a shared
//! backend can answer the same messages.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::{Actor, Addr, AsyncContext, Context, Handler, Message, Supervised};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use serde::Serialize;
use tracing::Span;

use crate::clock::SharedClock;
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

/// Who holds a key in flight: one per reservation attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Holder(u64);

impl Holder {
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    InFlight { holder: Holder, until: Instant },
    Released,
    Completed(Arc<StoredResponse>),
}

#[derive(Debug, Clone)]
/// One key's operation (fields private: only the actor reads them).
pub struct Record {
    fingerprint: String,
    order_id: String,
    phase: Phase,
    created: Instant,
}

/// The records, shared with whoever supervises the actor.
pub type Records = Arc<DashMap<String, Record>>;

pub fn new_records() -> Records {
    Arc::new(DashMap::new())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The key is new and now in flight for the candidate order id.
    New,
    /// The key was released after a transient failure and is in flight
    /// again, for the order id it had.
    Resume { order_id: String },
    /// The same key is being processed right now.
    InFlight,
    /// The key was used with a different body.
    Mismatch,
    /// The key's operation completed; answer what it answered.
    Replay(Arc<StoredResponse>),
    /// The store holds `max_keys` records.
    Full,
}

#[derive(Debug, Message)]
#[rtype(result = "Result<Reservation, ActorFailed>")]
pub struct Reserve {
    pub key: String,
    pub fingerprint: String,
    pub order_id: String,
    pub holder: Holder,
    pub span: Span,
}

#[derive(Debug, Message)]
#[rtype(result = "Result<(), ActorFailed>")]
pub struct Complete {
    pub key: String,
    pub holder: Holder,
    pub response: StoredResponse,
    pub span: Span,
}

#[derive(Debug, Message)]
#[rtype(result = "Result<(), ActorFailed>")]
pub struct Release {
    pub key: String,
    pub holder: Holder,
    pub span: Span,
}

/// Removes expired records now; answers how many.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, ActorFailed>")]
pub struct Sweep;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub entries: usize,
    pub in_flight: usize,
    pub completed: usize,
    pub released: usize,
}

#[derive(Debug, Message)]
#[rtype(result = "Result<Stats, ActorFailed>")]
pub struct GetStats;

pub struct IdempotencyStore {
    config: IdempotencyConfig,
    records: Records,
    clock: SharedClock,
}

impl IdempotencyStore {
    pub fn new(config: IdempotencyConfig, records: Records, clock: SharedClock) -> Self {
        Self {
            config,
            records,
            clock,
        }
    }

    fn reserve(&self, msg: &Reserve) -> Reservation {
        let now = self.clock.now();
        let full = self.records.len() >= self.config.max_keys;
        let held = Phase::InFlight {
            holder: msg.holder,
            until: now + self.config.lease,
        };
        match self.records.entry(msg.key.clone()) {
            Entry::Vacant(_) if full => Reservation::Full,
            Entry::Vacant(slot) => {
                slot.insert(Record {
                    fingerprint: msg.fingerprint.clone(),
                    order_id: msg.order_id.clone(),
                    phase: held,
                    created: now,
                });
                Reservation::New
            }
            Entry::Occupied(mut slot) => {
                let record = slot.get_mut();
                if record.fingerprint != msg.fingerprint {
                    return Reservation::Mismatch;
                }
                match &record.phase {
                    Phase::InFlight { until, .. } if *until > now => Reservation::InFlight,
                    Phase::Completed(response) => Reservation::Replay(response.clone()),
                    // Released, or held by a holder gone silent past its lease.
                    Phase::InFlight { .. } | Phase::Released => {
                        record.phase = held;
                        Reservation::Resume {
                            order_id: record.order_id.clone(),
                        }
                    }
                }
            }
        }
    }

    /// Moves `key` out of flight, if `holder` still holds it: a completed
    /// key stays completed, and a key taken over is its new holder's.
    fn end_flight(&self, key: &str, holder: Holder, phase: Phase) {
        if let Some(mut record) = self.records.get_mut(key)
            && matches!(record.phase, Phase::InFlight { holder: h, .. } if h == holder)
        {
            record.phase = phase;
        }
    }

    fn sweep(&self) -> usize {
        let now = self.clock.now();
        let before = self.records.len();
        self.records
            .retain(|_, r| now.saturating_duration_since(r.created) < self.config.ttl);
        before - self.records.len()
    }
}

impl Actor for IdempotencyStore {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.config.sweep_every, |store, _| {
            let removed = store.sweep();
            if removed > 0 {
                tracing::debug!(removed, "expired idempotency records swept");
            }
        });
    }
}

/// The records are outside the actor: a restart keeps them all.
impl Supervised for IdempotencyStore {}

fn actor_span(parent: &Span, message: &'static str, name: &'static str, key: &str) -> Span {
    tracing::info_span!(
        parent: parent, "idempotency",
        otel.name = name, actor.name = NAME, actor.message = message,
        idempotency.key = key, idempotency.outcome = tracing::field::Empty,
    )
}

impl Handler<Reserve> for IdempotencyStore {
    type Result = Result<Reservation, ActorFailed>;

    fn handle(&mut self, msg: Reserve, ctx: &mut Context<Self>) -> Self::Result {
        let span = actor_span(&msg.span, "Reserve", "idempotency.reserve", &msg.key);
        let _entered = span.enter();
        let reservation = guarded(ctx, NAME, || self.reserve(&msg))?;
        span.record(
            "idempotency.outcome",
            format!("{reservation:?}").split(['(', ' ']).next(),
        );
        Ok(reservation)
    }
}

impl Handler<Complete> for IdempotencyStore {
    type Result = Result<(), ActorFailed>;

    fn handle(&mut self, msg: Complete, ctx: &mut Context<Self>) -> Self::Result {
        let span = actor_span(&msg.span, "Complete", "idempotency.complete", &msg.key);
        let _entered = span.enter();
        let response = Arc::new(msg.response);
        guarded(ctx, NAME, || {
            self.end_flight(&msg.key, msg.holder, Phase::Completed(response))
        })
    }
}

impl Handler<Release> for IdempotencyStore {
    type Result = Result<(), ActorFailed>;

    fn handle(&mut self, msg: Release, ctx: &mut Context<Self>) -> Self::Result {
        let span = actor_span(&msg.span, "Release", "idempotency.release", &msg.key);
        let _entered = span.enter();
        guarded(ctx, NAME, || {
            self.end_flight(&msg.key, msg.holder, Phase::Released)
        })
    }
}

impl Handler<Sweep> for IdempotencyStore {
    type Result = Result<usize, ActorFailed>;

    fn handle(&mut self, _: Sweep, ctx: &mut Context<Self>) -> Self::Result {
        guarded(ctx, NAME, || self.sweep())
    }
}

impl Handler<GetStats> for IdempotencyStore {
    type Result = Result<Stats, ActorFailed>;

    fn handle(&mut self, _: GetStats, ctx: &mut Context<Self>) -> Self::Result {
        guarded(ctx, NAME, || {
            let mut stats = Stats {
                entries: self.records.len(),
                ..Stats::default()
            };
            for record in self.records.iter() {
                match record.phase {
                    Phase::InFlight { .. } => stats.in_flight += 1,
                    Phase::Released => stats.released += 1,
                    Phase::Completed(_) => stats.completed += 1,
                }
            }
            stats
        })
    }
}

impl Handler<Crash> for IdempotencyStore {
    type Result = Result<(), ActorFailed>;

    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) -> Self::Result {
        guarded(ctx, NAME, || panic!("IdempotencyStore told to crash"))
    }
}

/// A key in flight, released when dropped unless completed or released:
/// a request cancelled mid-way (client gone, panic) never leaves its key
/// stuck in flight (409 for the whole TTL).
pub struct KeyLease {
    store: Addr<IdempotencyStore>,
    holder: Holder,
    key: Option<String>,
}

impl KeyLease {
    /// Reserves `key`. The lease exists before the message is sent, so a
    /// caller dropped while awaiting the reply still releases what the
    /// reservation took; when the reply says the key was not taken, the
    /// lease is disarmed and the answer is all that is left.
    pub async fn reserve(
        store: &Addr<IdempotencyStore>,
        key: String,
        fingerprint: String,
        order_id: String,
        span: Span,
    ) -> (Option<Self>, Result<Reservation, ActorFailed>) {
        let holder = Holder::next();
        let mut lease = Self {
            store: store.clone(),
            holder,
            key: Some(key.clone()),
        };
        let reply = store
            .send(Reserve {
                key,
                fingerprint,
                order_id,
                holder,
                span,
            })
            .await
            .unwrap_or(Err(ActorFailed { actor: NAME }));
        match &reply {
            Ok(Reservation::New | Reservation::Resume { .. }) => (Some(lease), reply),
            // Not taken (or unknown: a failed actor handled nothing).
            _ => {
                lease.key = None;
                (None, reply)
            }
        }
    }

    pub fn complete(mut self, response: StoredResponse, span: Span) {
        if let Some(key) = self.key.take() {
            self.store.do_send(Complete {
                key,
                holder: self.holder,
                response,
                span,
            });
        }
    }

    pub fn release(mut self, span: Span) {
        if let Some(key) = self.key.take() {
            self.store.do_send(Release {
                key,
                holder: self.holder,
                span,
            });
        }
    }
}

impl Drop for KeyLease {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.store.do_send(Release {
                key,
                holder: self.holder,
                span: Span::none(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use actix::Supervisor;

    use super::*;
    use crate::clock::ManualClock;

    struct Fixture {
        addr: Addr<IdempotencyStore>,
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
        let records = new_records();
        let addr = Supervisor::start(move |_| IdempotencyStore::new(config, records, shared));
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
                    span: Span::none(),
                })
                .await
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
        assert_eq!(f.reserve("k", "body", "o2").await, Reservation::InFlight);
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
        assert_eq!(f.reserve("k", "body", "o3").await, Reservation::InFlight);
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
        assert_eq!(f.addr.send(Sweep).await.unwrap(), Ok(0));
        f.clock.advance(Duration::from_secs(1));
        assert_eq!(f.addr.send(Sweep).await.unwrap(), Ok(1));
        assert_eq!(f.reserve("k", "other body", "o2").await, Reservation::New);
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
        assert_eq!(f.reserve("b", "body", "o4").await, Reservation::InFlight);
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
            Span::none(),
        )
        .await;
        assert_eq!(reply, Ok(Reservation::New));
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
            Span::none(),
        )
        .await;
        assert_eq!(reply, Ok(Reservation::InFlight));
        assert!(lease.is_none());
        // A stray release by anyone but the holder changes nothing either.
        f.release_as("k", Holder::next()).await;
        f.complete_as("k", Holder::next(), "forged").await;
        assert_eq!(f.reserve("k", "body", "o3").await, Reservation::InFlight);
        assert_eq!(f.stats().await.in_flight, 1);
    }

    #[actix_rt::test]
    async fn a_lease_gone_silent_is_taken_over_with_the_same_order_id() {
        let f = start(10);
        f.reserve("k", "body", "o1").await;
        let first = f.holder("k");
        f.clock.advance(Duration::from_secs(9));
        assert_eq!(f.reserve("k", "body", "o2").await, Reservation::InFlight);
        f.clock.advance(Duration::from_secs(1));
        assert_eq!(
            f.reserve("k", "body", "o3").await,
            Reservation::Resume {
                order_id: "o1".into()
            }
        );
        // The first holder's late word no longer counts; the new holder's does.
        f.release_as("k", first).await;
        assert_eq!(f.reserve("k", "body", "o4").await, Reservation::InFlight);
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
            Reservation::InFlight
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
