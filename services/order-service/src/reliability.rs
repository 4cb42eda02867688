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

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use actix::{Addr, Supervisor};
use actors::bulkhead::Bulkhead;
use actors::circuit_breaker::CircuitBreaker;
use actors::clock::SharedClock;
use actors::idempotency::IdempotencyStore;
use actors::reconciler::Reconciler;
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

impl Reliability {
    /// Starts the actors on the current arbiter (call inside the actix system).
    pub fn start(
        config: &Config,
        clock: SharedClock,
        metrics: &OrderMetrics,
        storage: &Storage,
        link: &PaymentLink,
    ) -> Self {
        let breaker = {
            let (config, clock) = (config.breaker(), clock.clone());
            let metrics = metrics.clone();
            Supervisor::start(move |_| {
                CircuitBreaker::new(config, clock.clone())
                    .with_observer(metrics.transition_observer())
            })
        };
        let bulkhead = {
            let config = config.bulkhead();
            Supervisor::start(move |_| Bulkhead::new(config))
        };
        let idempotency = {
            // The backend owns the records: a restart of the actor keeps them.
            let config = config.idempotency();
            let keys = storage.keys(config, clock.clone());
            Supervisor::start(move |_| IdempotencyStore::new(keys, config.sweep_every))
        };
        let pipeline = Pipeline {
            breaker,
            bulkhead,
            retry_budget: Arc::new(RetryBudget::new(config.retry_budget())),
            clock: clock.clone(),
        };
        let reconciler = reconciler(config, link, pipeline.clone(), metrics, storage);
        Self {
            pipeline,
            idempotency,
            reconciler,
        }
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
fn reconciler(
    config: &Config,
    link: &PaymentLink,
    pipeline: Pipeline,
    metrics: &OrderMetrics,
    storage: &Storage,
) -> Addr<Reconciler<PendingOrder>> {
    let seed = config.retry.seed.map(|seed| seed.wrapping_sub(1));
    let payments = Rc::new(payments(config, link, pipeline, seed, metrics));
    let redrive = RefCell::new(Some(redrive(storage.orders(), payments, metrics.clone())));
    let (config, storage) = (config.reconciler(), storage.clone());
    Supervisor::start(move |_| {
        let redrive = redrive
            .borrow_mut()
            .take()
            .expect("the reconciler is built once");
        Reconciler::new(config, redrive, storage.claims())
    })
}
