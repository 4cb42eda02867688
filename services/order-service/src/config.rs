//! Configuration: each setting is an environment variable and a flag, so
//! `order-service --help` documents every knob and its default.

use std::time::Duration;

use actors::bulkhead::BulkheadConfig;
use actors::circuit_breaker::BreakerConfig;
use actors::idempotency::IdempotencyConfig;
use actors::reconciler::ReconcilerConfig;
use clap::Parser;
use common::server::ServerArgs;

use std::sync::Arc;

use crate::payment::CallPolicy;
use crate::payment::retry::{RetryBudgetConfig, RetryPolicy};
use crate::store::{MemoryStore, PgSettings, PgStore, Storage, StoreError};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "order-service",
    version,
    about = "Takes orders and charges them through payment-service, reliably"
)]
pub struct Config {
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,

    #[command(flatten)]
    pub server: ServerArgs,

    /// Base URL of payment-service.
    #[arg(
        long,
        env = "PAYMENT_SERVICE_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub payment_service_url: String,

    /// Continue a caller's `traceparent` (behind a proxy you trust to set
    /// it). By default order-service is a public edge: each request starts
    /// a trace of its own, linked to the caller's.
    #[arg(long, env = "TRUST_TRACEPARENT", default_value_t = false,
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub trust_traceparent: bool,

    /// The key presented to payment-service's POST /charge as `Authorization:
    /// Bearer <key>` (payment-service's PAYMENT_API_KEY). Required.
    #[arg(long, env = "PAYMENT_API_KEY", hide_env_values = true)]
    pub payment_api_key: Option<String>,

    /// Budget for the whole payment call (all attempts and backoff), in milliseconds.
    #[arg(
        long,
        env = "PAYMENT_TIMEOUT_MS",
        default_value_t = 500,
        help_heading = "Timeout and retries"
    )]
    pub payment_timeout_ms: u64,

    /// Attempts per payment call, the first included.
    #[arg(long, env = "RETRY_MAX_ATTEMPTS", default_value_t = 3, help_heading = "Timeout and retries",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub retry_max_attempts: u32,

    /// Backoff before the first retry, doubled for each further one, in milliseconds.
    #[arg(
        long,
        env = "RETRY_BASE_MS",
        default_value_t = 50,
        help_heading = "Timeout and retries"
    )]
    pub retry_base_ms: u64,

    /// Uniform jitter on each backoff, as a fraction (0.3 = ±30 %).
    #[arg(long, env = "RETRY_JITTER", default_value_t = 0.3, help_heading = "Timeout and retries",
          value_parser = fraction)]
    pub retry_jitter: f64,

    /// Retries may add at most this percentage to the calls of the budget window.
    #[arg(
        long,
        env = "RETRY_BUDGET_PCT",
        default_value_t = 20,
        help_heading = "Timeout and retries"
    )]
    pub retry_budget_pct: u32,

    /// Retries per second always allowed by the retry budget.
    #[arg(
        long,
        env = "RETRY_BUDGET_MIN_PER_SEC",
        default_value_t = 10,
        help_heading = "Timeout and retries"
    )]
    pub retry_budget_min_per_sec: u32,

    /// Window of the retry budget, in milliseconds.
    #[arg(
        long,
        env = "RETRY_BUDGET_WINDOW_MS",
        default_value_t = 10_000,
        help_heading = "Timeout and retries"
    )]
    pub retry_budget_window_ms: u64,

    /// Seed of the retry jitter, for reproducible runs; unset, seeded from the OS.
    #[arg(long, env = "RETRY_SEED", help_heading = "Timeout and retries")]
    pub retry_seed: Option<u64>,

    /// Consecutive failed attempts that open the circuit.
    #[arg(
        long,
        env = "CB_CONSECUTIVE_FAILURES",
        default_value_t = 5,
        help_heading = "Circuit breaker"
    )]
    pub cb_consecutive_failures: u32,

    /// Failure ratio over the window that opens the circuit (with CB_MIN_CALLS calls).
    #[arg(long, env = "CB_FAILURE_RATIO", default_value_t = 0.6, help_heading = "Circuit breaker",
          value_parser = fraction)]
    pub cb_failure_ratio: f64,

    /// Calls the window needs before the ratio rule applies.
    #[arg(
        long,
        env = "CB_MIN_CALLS",
        default_value_t = 10,
        help_heading = "Circuit breaker"
    )]
    pub cb_min_calls: u32,

    /// Rolling window of the ratio rule, in milliseconds.
    #[arg(
        long,
        env = "CB_WINDOW_MS",
        default_value_t = 10_000,
        help_heading = "Circuit breaker"
    )]
    pub cb_window_ms: u64,

    /// How long the circuit stays open before half-open trials, in milliseconds.
    #[arg(
        long,
        env = "CB_OPEN_MS",
        default_value_t = 30_000,
        help_heading = "Circuit breaker"
    )]
    pub cb_open_ms: u64,

    /// Trial calls admitted half-open; all must succeed to close.
    #[arg(long, env = "CB_HALF_OPEN_CALLS", default_value_t = 3, help_heading = "Circuit breaker",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub cb_half_open_calls: u32,

    /// Payment attempts in flight at once.
    #[arg(long, env = "BULKHEAD_MAX", default_value_t = 10, help_heading = "Bulkhead",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub bulkhead_max: u64,

    /// Longest wait for a bulkhead permit (never past the budget), in milliseconds.
    #[arg(
        long,
        env = "BULKHEAD_MAX_WAIT_MS",
        default_value_t = 250,
        help_heading = "Bulkhead"
    )]
    pub bulkhead_max_wait_ms: u64,

    /// Callers allowed to wait for a permit; more are refused at once.
    #[arg(
        long,
        env = "BULKHEAD_MAX_QUEUE",
        default_value_t = 200,
        help_heading = "Bulkhead"
    )]
    pub bulkhead_max_queue: u64,

    /// How long an Idempotency-Key is remembered, in seconds.
    #[arg(
        long,
        env = "IDEMPOTENCY_TTL_SECS",
        default_value_t = 86_400,
        help_heading = "Idempotency"
    )]
    pub idempotency_ttl_secs: u64,

    /// Most keys remembered; beyond it new keys get 503, known ones still replay.
    #[arg(
        long,
        env = "IDEMPOTENCY_MAX_KEYS",
        default_value_t = 1_000_000,
        help_heading = "Idempotency"
    )]
    pub idempotency_max_keys: u64,

    /// How long a key stays in flight with no word from the request holding
    /// it before another request may take it over, in milliseconds (at
    /// least twice PAYMENT_TIMEOUT_MS).
    #[arg(
        long,
        env = "IDEMPOTENCY_LEASE_MS",
        default_value_t = 10_000,
        help_heading = "Idempotency"
    )]
    pub idempotency_lease_ms: u64,

    /// How often the reconciler looks for pending orders to re-drive, in
    /// milliseconds (also the first backoff, doubled per try).
    #[arg(long, env = "RECONCILE_INTERVAL_MS", default_value_t = 1000, help_heading = "Reconciler",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub reconcile_interval_ms: u64,

    /// Longest pause between two re-drives of one order, in milliseconds.
    #[arg(
        long,
        env = "RECONCILE_MAX_BACKOFF_MS",
        default_value_t = 30_000,
        help_heading = "Reconciler"
    )]
    pub reconcile_max_backoff_ms: u64,

    /// Re-drives running at once.
    #[arg(long, env = "RECONCILE_MAX_CONCURRENT", default_value_t = 4, help_heading = "Reconciler",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub reconcile_max_concurrent: u64,

    /// How often expired keys are swept, in seconds.
    #[arg(long, env = "IDEMPOTENCY_SWEEP_SECS", default_value_t = 60, help_heading = "Idempotency",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub idempotency_sweep_secs: u64,

    /// PostgreSQL holding orders, keys and the reconciler's work, shared by
    /// every replica (postgres://user@host:port/db); unset, they live in
    /// this process and a restart forgets them.
    #[arg(long, env = "DATABASE_URL", help_heading = "Database")]
    pub database_url: Option<String>,

    /// Without DATABASE_URL: orders kept in memory, at most. Beyond it the
    /// oldest settled (completed or failed) order is forgotten for each new
    /// one; a pending order never is, and when only pending ones are left a
    /// new order is refused with 503.
    #[arg(long, env = "ORDERS_MAX", default_value_t = 1_000_000, help_heading = "Database",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub orders_max: u64,

    /// Connections in the pool, at most.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 16, help_heading = "Database",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub database_pool_size: u64,

    /// Longest wait for a pooled connection, in milliseconds (capped at
    /// PAYMENT_TIMEOUT_MS).
    #[arg(
        long,
        env = "DATABASE_ACQUIRE_TIMEOUT_MS",
        default_value_t = 250,
        help_heading = "Database"
    )]
    pub database_acquire_timeout_ms: u64,

    /// Longest wait for one database operation, connection included, in
    /// milliseconds; beyond it the request gets 503.
    #[arg(
        long,
        env = "DATABASE_TIMEOUT_MS",
        default_value_t = 1_000,
        help_heading = "Database"
    )]
    pub database_timeout_ms: u64,
}

impl Config {
    /// The defaults, as if started with no environment and no flags.
    pub fn defaults() -> Self {
        let mut config = Self::parse_from(["order-service"]);
        config.server.admin_token = None;
        config.payment_api_key = None;
        config
    }

    pub fn call_policy(&self) -> CallPolicy {
        CallPolicy {
            budget: Duration::from_millis(self.payment_timeout_ms),
            retry: RetryPolicy {
                max_attempts: self.retry_max_attempts,
                base: Duration::from_millis(self.retry_base_ms),
                jitter: self.retry_jitter,
            },
            bulkhead_wait: Duration::from_millis(self.bulkhead_max_wait_ms),
            bulkhead_max: self.bulkhead_max as usize,
        }
    }

    pub fn retry_budget(&self) -> RetryBudgetConfig {
        RetryBudgetConfig {
            pct: self.retry_budget_pct,
            min_per_sec: self.retry_budget_min_per_sec,
            window: Duration::from_millis(self.retry_budget_window_ms),
        }
    }

    pub fn breaker(&self) -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: self.cb_consecutive_failures,
            failure_ratio: self.cb_failure_ratio,
            min_calls: self.cb_min_calls,
            window: Duration::from_millis(self.cb_window_ms),
            open_for: Duration::from_millis(self.cb_open_ms),
            half_open_calls: self.cb_half_open_calls,
            trial_timeout: self.call_policy().longest_call(),
        }
    }

    pub fn bulkhead(&self) -> BulkheadConfig {
        BulkheadConfig {
            max_concurrent: self.bulkhead_max as usize,
            max_queue: self.bulkhead_max_queue as usize,
        }
    }

    pub fn reconciler(&self) -> ReconcilerConfig {
        ReconcilerConfig {
            interval: Duration::from_millis(self.reconcile_interval_ms),
            max_backoff: Duration::from_millis(self.reconcile_max_backoff_ms),
            max_concurrent: self.reconcile_max_concurrent as usize,
        }
    }

    pub fn idempotency(&self) -> IdempotencyConfig {
        IdempotencyConfig {
            ttl: Duration::from_secs(self.idempotency_ttl_secs),
            max_keys: self.idempotency_max_keys as usize,
            sweep_every: Duration::from_secs(self.idempotency_sweep_secs),
            lease: Duration::from_millis(
                self.idempotency_lease_ms
                    .max(self.payment_timeout_ms.saturating_mul(2)),
            ),
        }
    }
}

impl Config {
    /// Where orders and keys live, as `DATABASE_URL` says.
    pub fn storage(&self) -> Result<Storage, StoreError> {
        let Some(url) = &self.database_url else {
            return Ok(Storage::InProcess(Arc::new(MemoryStore::new(
                self.orders_max as usize,
            ))));
        };
        let budget = Duration::from_millis(self.payment_timeout_ms);
        let settings = PgSettings {
            pool_size: self.database_pool_size as usize,
            acquire_timeout: Duration::from_millis(self.database_acquire_timeout_ms).min(budget),
            statement_timeout: Duration::from_millis(self.database_timeout_ms),
            key_ttl: Duration::from_secs(self.idempotency_ttl_secs),
            key_lease: self.idempotency().lease,
            hold: self.call_policy().longest_call(),
            redrive_interval: Duration::from_millis(self.reconcile_interval_ms),
            redrive_max_backoff: Duration::from_millis(self.reconcile_max_backoff_ms),
        };
        Ok(Storage::Shared(PgStore::new(url, settings)?))
    }
}

/// A number from 0 to 1.
fn fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.0..=1.0).contains(&value) => Ok(value),
        _ => Err(format!("{text} is not a number from 0 to 1")),
    }
}
