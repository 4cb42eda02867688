//! The reliability actors of one order-service process, started once under
//! supervision and shared by every worker through their addresses.
//! A restart of the breaker may trip it again after a few failures; of the
//! bulkhead, drops waiters; of the idempotency store or the reconciler,
//! loses nothing but the message (or re-drives) in hand.
//!
//! With a shared store, the idempotency keys and the reconciler's work are
//! in the database, common to every replica; the breaker and the bulkhead
//! stay per replica by design (as in Envoy, resilience4j and Polly): each
//! judges payment from its own attempts and protects its own resources.

use std::rc::Rc;
use std::sync::Arc;

use actix::Addr;
use actors::bulkhead::Bulkhead;
use actors::circuit_breaker::CircuitBreaker;
use actors::clock::SharedClock;
use actors::idempotency::IdempotencyStore;
use actors::reconciler::{Reconciler, Redrive};
use actors::supervision::mailbox;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::config::Config;
use crate::metrics::OrderMetrics;
use crate::payment::retry::RetryBudget;
use crate::payment::{PaymentCall, PaymentClient, PaymentLink, Pipeline};
use crate::reconcile::redrive;
use crate::store::{OrderKeys, PendingOrder, Storage};

#[derive(Clone)]
pub struct Reliability {
    /// The breaker, the bulkhead and the retry budget every payment call
    /// of the process shares.
    pub pipeline: Pipeline,
    pub idempotency: Addr<IdempotencyStore<OrderKeys>>,
    pub reconciler: Addr<Reconciler<PendingOrder>>,
}

/// A payment pipeline on `pipeline`, for one thread (its HTTP client is
/// per thread), its jitter seeded from `seed` (a RETRY_SEED made distinct
/// per thread) or from the OS.
pub fn payments(
    config: &Config,
    link: &PaymentLink,
    pipeline: Pipeline,
    seed: Option<u64>,
    metrics: &OrderMetrics,
) -> PaymentCall {
    let api_key = config.payment_api_key.as_deref().unwrap_or_default();
    PaymentCall::new(
        PaymentClient::new(link, &config.payment_service_url, api_key),
        config.call_policy(),
        pipeline,
        match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => rand::make_rng(),
        },
        metrics.clone(),
    )
}

/// Runs the actors of a [`Reliability`], once, on the calling thread.
pub struct Hosting(Box<dyn FnOnce() + Send>);

impl Hosting {
    pub fn start(self) {
        (self.0)()
    }
}

impl Reliability {
    /// The actors' addresses, and what runs them: [`Hosting::start`], on
    /// the thread that is to run them (startup.rs: the first HTTP worker's,
    /// so that its messages to them wake no other thread). Messages sent
    /// before it starts wait in the mailboxes.
    pub fn new(
        config: &Config,
        clock: SharedClock,
        metrics: &OrderMetrics,
        storage: &Storage,
        link: &PaymentLink,
    ) -> (Self, Hosting) {
        let (breaker, breaker_box) = mailbox();
        let (bulkhead, bulkhead_box) = mailbox();
        let (idempotency, idempotency_box) = mailbox();
        let (reconciler, reconciler_box) = mailbox();
        let pipeline = Pipeline {
            breaker,
            bulkhead,
            retry_budget: Arc::new(RetryBudget::new(config.retry_budget())),
            clock: clock.clone(),
        };
        let hosting = {
            let (config, metrics, storage) = (config.clone(), metrics.clone(), storage.clone());
            let (link, pipeline) = (link.clone(), pipeline.clone());
            Hosting(Box::new(move || {
                let (breaker, observer) = (config.breaker(), metrics.transition_observer());
                let breaker_clock = clock.clone();
                breaker_box.supervise(move |_| {
                    CircuitBreaker::new(breaker, breaker_clock).with_observer(observer)
                });
                let bulkhead = config.bulkhead();
                bulkhead_box.supervise(move |_| Bulkhead::new(bulkhead));
                // The backend owns the records: a restart of the actor keeps them.
                let keys = config.idempotency();
                let backend = storage.keys(keys, clock);
                idempotency_box
                    .supervise(move |_| IdempotencyStore::new(backend, keys.sweep_every));
                let redrive = redriver(&config, &link, pipeline, &metrics, &storage);
                let (settings, claims) = (config.reconciler(), storage.claims());
                reconciler_box.supervise(move |_| Reconciler::new(settings, redrive, claims));
            }))
        };
        let reliability = Self {
            pipeline,
            idempotency,
            reconciler,
        };
        (reliability, hosting)
    }

    /// Whether every actor's mailbox is open (`/ready`).
    pub fn running(&self) -> bool {
        self.pipeline.breaker.connected()
            && self.pipeline.bulkhead.connected()
            && self.idempotency.connected()
            && self.reconciler.connected()
    }
}

/// The reconciler charges through the same pipeline (breaker, bulkhead,
/// budget, retries) with its own HTTP client, on this thread, where the
/// actor runs; it finds pending orders where the store says.
fn redriver(
    config: &Config,
    link: &PaymentLink,
    pipeline: Pipeline,
    metrics: &OrderMetrics,
    storage: &Storage,
) -> Redrive<PendingOrder> {
    let seed = config.retry.seed.map(|seed| seed.wrapping_sub(1));
    let payments = Rc::new(payments(config, link, pipeline, seed, metrics));
    redrive(storage.orders(), payments, metrics.clone())
}
