//! The reliability actors of one order-service process, started once under
//! supervision and shared by every worker through their addresses.

use std::sync::Arc;

use actix::{Addr, Supervisor};
use actors::bulkhead::Bulkhead;
use actors::circuit_breaker::CircuitBreaker;
use actors::clock::SharedClock;
use actors::idempotency::{self, IdempotencyStore};

use crate::config::Config;
use crate::metrics::OrderMetrics;
use crate::payment::retry::RetryBudget;

#[derive(Clone)]
pub struct Reliability {
    pub breaker: Addr<CircuitBreaker>,
    pub bulkhead: Addr<Bulkhead>,
    pub idempotency: Addr<IdempotencyStore>,
    /// Not an actor: a counter behind a mutex is all it needs.
    pub retry_budget: Arc<RetryBudget>,
    pub clock: SharedClock,
}

impl Reliability {
    /// Starts the actors on the current arbiter (call inside the actix system).
    pub fn start(config: &Config, clock: SharedClock, metrics: &OrderMetrics) -> Self {
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
            // Owned here, handed to the actor: a restart of the actor keeps them.
            let records = idempotency::new_records();
            let (config, clock) = (config.idempotency(), clock.clone());
            Supervisor::start(move |_| IdempotencyStore::new(config, records, clock))
        };
        Self {
            breaker,
            bulkhead,
            idempotency,
            retry_budget: Arc::new(RetryBudget::new(config.retry_budget())),
            clock,
        }
    }

    /// Whether every actor's mailbox is open (`/ready`).
    pub fn running(&self) -> bool {
        self.breaker.connected() && self.bulkhead.connected() && self.idempotency.connected()
    }
}
