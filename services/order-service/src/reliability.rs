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
use crate::orders::PendingOrder;
use crate::payment::retry::RetryBudget;
use crate::payment::{PaymentCall, PaymentClient};
use crate::reconcile::{TableClaims, redrive};
use crate::store::{OrderKeys, Storage};

#[derive(Clone)]
pub struct Reliability {
    pub breaker: Addr<CircuitBreaker>,
    pub bulkhead: Addr<Bulkhead>,
    pub idempotency: Addr<IdempotencyStore<OrderKeys>>,
    pub reconciler: Addr<Reconciler<PendingOrder>>,
    /// Not an actor: a counter behind a mutex is all it needs.
    pub retry_budget: Arc<RetryBudget>,
    pub clock: SharedClock,
}

impl Reliability {
    /// Starts the actors on the current arbiter (call inside the actix system).
    pub fn start(
        config: &Config,
        clock: SharedClock,
        metrics: &OrderMetrics,
        storage: &Storage,
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
        let retry_budget = Arc::new(RetryBudget::new(config.retry_budget()));
        let reconciler = {
            // The reconciler charges through the same pipeline (breaker,
            // bulkhead, budget, retries) with its own HTTP client, on this
            // thread, where the actor runs.
            let api_key = config.payment_api_key.as_deref().unwrap_or_default();
            let payments = Rc::new(PaymentCall::new(
                PaymentClient::new(&config.payment_service_url, api_key),
                config.call_policy(),
                breaker.clone(),
                bulkhead.clone(),
                retry_budget.clone(),
                clock.clone(),
                match config.retry_seed {
                    Some(seed) => StdRng::seed_from_u64(seed.wrapping_sub(1)),
                    None => rand::make_rng(),
                },
                metrics.clone(),
            ));
            let redrive = RefCell::new(Some(redrive(storage.orders(), payments, metrics.clone())));
            let (config, clock) = (config.reconciler(), clock.clone());
            let storage = storage.clone();
            Supervisor::start(move |_| {
                let redrive = redrive
                    .borrow_mut()
                    .take()
                    .expect("the reconciler is built once");
                match storage {
                    Storage::InProcess(_) => Reconciler::new(config, clock, redrive),
                    // Shared: the table is the schedule, for every replica.
                    Storage::Shared(pg) => {
                        Reconciler::claiming(config, clock, redrive, Box::new(TableClaims(pg)))
                    }
                }
            })
        };
        Self {
            breaker,
            bulkhead,
            idempotency,
            reconciler,
            retry_budget,
            clock,
        }
    }

    /// Whether every actor's mailbox is open (`/ready`).
    pub fn running(&self) -> bool {
        self.breaker.connected()
            && self.bulkhead.connected()
            && self.idempotency.connected()
            && self.reconciler.connected()
    }
}
