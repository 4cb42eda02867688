//! What every worker shares. Its own module so that the routes and
//! `startup` both import it while `startup` alone imports the routes.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::faults::FaultInjector;
use crate::ledger::Ledger;
use crate::metrics::PaymentMetrics;

pub struct AppState {
    pub ledger: Arc<Ledger>,
    pub faults: FaultInjector,
    pub work: SimulatedWork,
    /// Charge requests received, whatever their fate: lets a test prove
    /// that a caller sent nothing.
    pub requests: AtomicU64,
    pub metrics: PaymentMetrics,
}

/// The simulated work of a charge.
#[derive(Debug, Clone, Copy)]
pub struct SimulatedWork {
    pub validate: Duration,
    pub gateway: Duration,
}
