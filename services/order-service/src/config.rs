//! Configuration: each setting is an environment variable and a flag, so
//! `order-service --help` documents every knob and its default. The
//! settings come in groups, one per part of the pipeline, each turning
//! itself into what that part takes.

use std::time::Duration;

use actors::bulkhead::BulkheadConfig;
use actors::circuit_breaker::BreakerConfig;
use actors::idempotency::IdempotencyConfig;
use actors::reconciler::ReconcilerConfig;
use clap::{Args, Parser};
use common::server::ServerArgs;

use crate::limits::LimitArgs;
use crate::payment::CallPolicy;
use crate::payment::link::PaymentTlsArgs;
use crate::payment::retry::{RetryBudgetConfig, RetryPolicy};
use crate::store::{PgSettings, Redrives, StorageSettings};

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

    /// payment-service's ADMIN_TOKEN, for the dashboard's fault controls
    /// (`/admin/payment/faults` forwards to payment's `/admin/faults`);
    /// unset, the dashboard shows payment's faults without controls.
    #[arg(long, env = "PAYMENT_ADMIN_TOKEN", hide_env_values = true)]
    pub payment_admin_token: Option<String>,

    #[command(flatten)]
    pub payment_tls: PaymentTlsArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub retry: RetryArgs,
    #[command(flatten)]
    pub breaker: BreakerArgs,
    #[command(flatten)]
    pub bulkhead: BulkheadArgs,
    #[command(flatten)]
    pub idempotency: IdempotencyArgs,
    #[command(flatten)]
    pub reconciler: ReconcilerArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Timeout and retries")]
pub struct RetryArgs {
    /// Budget for the whole payment call (all attempts and backoff), in milliseconds.
    #[arg(
        id = "payment_timeout_ms",
        value_name = "MS",
        long = "payment-timeout-ms",
        env = "PAYMENT_TIMEOUT_MS",
        default_value_t = 500
    )]
    pub timeout_ms: u64,

    /// Attempts per payment call, the first included.
    #[arg(long = "retry-max-attempts", env = "RETRY_MAX_ATTEMPTS", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,

    /// Backoff before the first retry, doubled for each further one, in milliseconds.
    #[arg(long = "retry-base-ms", env = "RETRY_BASE_MS", default_value_t = 50)]
    pub base_ms: u64,

    /// Uniform jitter on each backoff, as a fraction (0.3 = ±30 %).
    #[arg(long = "retry-jitter", env = "RETRY_JITTER", default_value_t = 0.3,
          value_parser = fraction)]
    pub jitter: f64,

    /// Retries may add at most this percentage to the calls of the budget window.
    #[arg(
        long = "retry-budget-pct",
        env = "RETRY_BUDGET_PCT",
        default_value_t = 20
    )]
    pub budget_pct: u32,

    /// Retries per second always allowed by the retry budget.
    #[arg(
        long = "retry-budget-min-per-sec",
        env = "RETRY_BUDGET_MIN_PER_SEC",
        default_value_t = 10
    )]
    pub budget_min_per_sec: u32,

    /// Window of the retry budget, in milliseconds.
    #[arg(
        long = "retry-budget-window-ms",
        env = "RETRY_BUDGET_WINDOW_MS",
        default_value_t = 10_000
    )]
    pub budget_window_ms: u64,

    /// Seed of the retry jitter, for reproducible runs; unset, seeded from the OS.
    #[arg(long = "retry-seed", env = "RETRY_SEED")]
    pub seed: Option<u64>,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Circuit breaker")]
pub struct BreakerArgs {
    /// Consecutive failed attempts that open the circuit.
    #[arg(
        long = "cb-consecutive-failures",
        env = "CB_CONSECUTIVE_FAILURES",
        default_value_t = 5
    )]
    pub consecutive_failures: u32,

    /// Failure ratio over the window that opens the circuit (with CB_MIN_CALLS calls).
    #[arg(long = "cb-failure-ratio", env = "CB_FAILURE_RATIO", default_value_t = 0.6,
          value_parser = fraction)]
    pub failure_ratio: f64,

    /// Calls the window needs before the ratio rule applies.
    #[arg(long = "cb-min-calls", env = "CB_MIN_CALLS", default_value_t = 10)]
    pub min_calls: u32,

    /// Rolling window of the ratio rule, in milliseconds.
    #[arg(long = "cb-window-ms", env = "CB_WINDOW_MS", default_value_t = 10_000)]
    pub window_ms: u64,

    /// How long the circuit stays open before half-open trials, in milliseconds.
    #[arg(long = "cb-open-ms", env = "CB_OPEN_MS", default_value_t = 30_000)]
    pub open_ms: u64,

    /// Trial calls admitted half-open; all must succeed to close.
    #[arg(long = "cb-half-open-calls", env = "CB_HALF_OPEN_CALLS", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub half_open_calls: u32,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Bulkhead")]
pub struct BulkheadArgs {
    /// Payment attempts in flight at once.
    #[arg(long = "bulkhead-max", env = "BULKHEAD_MAX", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max: u64,

    /// A bound on any wait for a bulkhead permit, in milliseconds. Unset, a
    /// caller waits while its remaining budget can still cover a call.
    #[arg(long = "bulkhead-max-wait-ms", env = "BULKHEAD_MAX_WAIT_MS")]
    pub max_wait_ms: Option<u64>,

    /// Under overload (the queue keeps growing, or fails callers), every
    /// wait is cut to this; a caller not served within it gets 503, in
    /// milliseconds.
    #[arg(
        long = "bulkhead-overload-wait-ms",
        env = "BULKHEAD_OVERLOAD_WAIT_MS",
        default_value_t = 100
    )]
    pub overload_wait_ms: u64,

    /// Callers allowed to wait for a permit; more are refused at once.
    #[arg(
        long = "bulkhead-max-queue",
        env = "BULKHEAD_MAX_QUEUE",
        default_value_t = 200
    )]
    pub max_queue: u64,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Idempotency")]
pub struct IdempotencyArgs {
    /// How long an Idempotency-Key is remembered, in seconds.
    #[arg(
        long = "idempotency-ttl-secs",
        env = "IDEMPOTENCY_TTL_SECS",
        default_value_t = 86_400
    )]
    pub ttl_secs: u64,

    /// Most keys remembered; beyond it new keys get 503, known ones still replay.
    #[arg(
        long = "idempotency-max-keys",
        env = "IDEMPOTENCY_MAX_KEYS",
        default_value_t = 1_000_000
    )]
    pub max_keys: u64,

    /// How long a key stays in flight with no word from the request holding
    /// it before another request may take it over, in milliseconds (at
    /// least twice PAYMENT_TIMEOUT_MS).
    #[arg(
        long = "idempotency-lease-ms",
        env = "IDEMPOTENCY_LEASE_MS",
        default_value_t = 10_000
    )]
    pub lease_ms: u64,

    /// How often expired keys are swept, in seconds.
    #[arg(long = "idempotency-sweep-secs", env = "IDEMPOTENCY_SWEEP_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub sweep_secs: u64,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Reconciler")]
pub struct ReconcilerArgs {
    /// How often the reconciler looks for pending orders to re-drive, in
    /// milliseconds (also the first backoff, doubled per try).
    #[arg(long = "reconcile-interval-ms", env = "RECONCILE_INTERVAL_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub interval_ms: u64,

    /// Longest pause between two re-drives of one order, in milliseconds.
    #[arg(
        long = "reconcile-max-backoff-ms",
        env = "RECONCILE_MAX_BACKOFF_MS",
        default_value_t = 30_000
    )]
    pub max_backoff_ms: u64,

    /// Re-drives running at once.
    #[arg(long = "reconcile-max-concurrent", env = "RECONCILE_MAX_CONCURRENT", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_concurrent: u64,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseArgs {
    /// PostgreSQL holding orders, keys and the reconciler's work, shared by
    /// every replica (postgres://user@host:port/db); unset, they live in
    /// this process and a restart forgets them.
    #[arg(long = "database-url", env = "DATABASE_URL")]
    pub url: Option<String>,

    /// Without DATABASE_URL: orders kept in memory, at most. Beyond it the
    /// oldest settled (completed or failed) order is forgotten for each new
    /// one; a pending order never is, and when only pending ones are left a
    /// new order is refused with 503.
    #[arg(long = "orders-max", env = "ORDERS_MAX", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub orders_max: u64,

    /// Connections in the pool, at most.
    #[arg(long = "database-pool-size", env = "DATABASE_POOL_SIZE", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub pool_size: u64,

    /// Orders' writes that share one transaction (one round trip, one
    /// commit), at most. Under load a write waits while earlier ones are
    /// under way, then goes with everything queued; 1 sends each write
    /// alone.
    #[arg(long = "database-batch-max", env = "DATABASE_BATCH_MAX", default_value_t = 32,
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub batch_max: u64,

    /// Transactions of orders' writes under way at once. One waits for
    /// the disk's flush and takes many orders' writes; more take fewer
    /// each and cost the database more per order (docs/postgres-path.md).
    #[arg(long = "database-batch-writers", env = "DATABASE_BATCH_WRITERS", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    pub batch_writers: u64,

    /// Longest wait for a pooled connection, in milliseconds (capped at
    /// PAYMENT_TIMEOUT_MS).
    #[arg(
        long = "database-acquire-timeout-ms",
        env = "DATABASE_ACQUIRE_TIMEOUT_MS",
        default_value_t = 250
    )]
    pub acquire_timeout_ms: u64,

    /// Longest wait for one database operation, connection included, in
    /// milliseconds; beyond it the request gets 503. The server ends a
    /// transaction left waiting for twice this (its client is gone).
    #[arg(
        id = "database_timeout_ms",
        value_name = "MS",
        long = "database-timeout-ms",
        env = "DATABASE_TIMEOUT_MS",
        default_value_t = 1_000,
        value_parser = clap::value_parser!(u64).range(10..=600_000)
    )]
    pub timeout_ms: u64,
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
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
        let retry = &self.retry;
        CallPolicy {
            budget: ms(retry.timeout_ms),
            retry: RetryPolicy {
                max_attempts: retry.max_attempts,
                base: ms(retry.base_ms),
                jitter: retry.jitter,
            },
            bulkhead_max: self.bulkhead.max as usize,
        }
    }

    pub fn retry_budget(&self) -> RetryBudgetConfig {
        RetryBudgetConfig {
            pct: self.retry.budget_pct,
            min_per_sec: self.retry.budget_min_per_sec,
            window: ms(self.retry.budget_window_ms),
        }
    }

    pub fn breaker(&self) -> BreakerConfig {
        let b = &self.breaker;
        BreakerConfig {
            consecutive_failures: b.consecutive_failures,
            failure_ratio: b.failure_ratio,
            min_calls: b.min_calls,
            window: ms(b.window_ms),
            open_for: ms(b.open_ms),
            half_open_calls: b.half_open_calls,
            trial_timeout: self.call_policy().longest_call(),
        }
    }

    pub fn bulkhead(&self) -> BulkheadConfig {
        BulkheadConfig {
            max_concurrent: self.bulkhead.max as usize,
            max_queue: self.bulkhead.max_queue as usize,
            max_wait: self.bulkhead.max_wait_ms.map(ms),
            overload_wait: ms(self.bulkhead.overload_wait_ms),
            // A quarter of the budget: 375 ms of a 500 ms budget may go on
            // waiting (90 callers ahead on 10 permits of 26 ms need ~240,
            // and this machine's noise stretches that by 60 ms at times),
            // 125 are kept for the call. A slowdown beyond that shows in
            // the reserve as soon as most permits in use are older.
            reserve_floor: self.call_policy().budget / 4,
        }
    }

    pub fn reconciler(&self) -> ReconcilerConfig {
        let r = &self.reconciler;
        ReconcilerConfig {
            interval: ms(r.interval_ms),
            max_concurrent: r.max_concurrent as usize,
        }
    }

    pub fn idempotency(&self) -> IdempotencyConfig {
        let i = &self.idempotency;
        IdempotencyConfig {
            ttl: Duration::from_secs(i.ttl_secs),
            max_keys: i.max_keys as usize,
            sweep_every: Duration::from_secs(i.sweep_secs),
            lease: ms(i.lease_ms.max(self.retry.timeout_ms.saturating_mul(2))),
        }
    }

    /// Where orders and keys live, as `DATABASE_URL` says: what
    /// [`crate::store::Storage::open`] takes.
    pub fn storage(&self) -> StorageSettings {
        let d = &self.database;
        StorageSettings {
            database_url: d.url.clone(),
            orders_max: d.orders_max as usize,
            redrives: Redrives {
                hold: self.call_policy().longest_call(),
                interval: ms(self.reconciler.interval_ms),
                max_backoff: ms(self.reconciler.max_backoff_ms),
            },
            pg: PgSettings {
                pool_size: d.pool_size as usize,
                acquire_timeout: ms(d.acquire_timeout_ms).min(ms(self.retry.timeout_ms)),
                statement_timeout: ms(d.timeout_ms),
                key_ttl: Duration::from_secs(self.idempotency.ttl_secs),
                key_lease: self.idempotency().lease,
                batch_max: d.batch_max as usize,
                batch_writers: d.batch_writers as usize,
            },
        }
    }
}

/// A number from 0 to 1.
fn fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.0..=1.0).contains(&value) => Ok(value),
        _ => Err(format!("{text} is not a number from 0 to 1")),
    }
}
