//! Retries within a time budget: a policy, not an actor. Deterministic given
//! its clock, its sleeper and a seeded RNG, which is how it is tested.
//!
//! - At most `max_attempts` attempts; backoff `base × 2^(n-1)` with ±`jitter`
//!   uniform noise (50 → 100 → 200 ms by default).
//! - Only transient outcomes are retried: 5xx, 429, timeouts, connection
//!   failures. A decline or any other 4xx ends the call at once.
//! - Every attempt and every backoff fits inside the deadline: no sleep is
//!   started that would end past it. A `Retry-After` on 429/503 replaces the
//!   backoff, or ends the call at once when it is longer than what is left.
//! - A shared [`RetryBudget`] caps retries at `pct` % of recent calls plus a
//!   floor per second, so an outage cannot multiply the load on payment.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actors::clock::Clock;
use rand::RngExt;
use rand::rngs::StdRng;

use super::client::{Attempt, Receipt};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    /// ± fraction of the backoff, e.g. 0.3.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base: Duration::from_millis(50),
            jitter: 0.3,
        }
    }
}

impl RetryPolicy {
    /// The pause before retry number `retry` (1 for the first retry).
    pub fn backoff(&self, retry: u32, rng: &mut StdRng) -> Duration {
        let nominal = self
            .base
            .saturating_mul(1 << retry.saturating_sub(1).min(20));
        let jitter = self.jitter.clamp(0.0, 1.0);
        let factor = if jitter > 0.0 {
            rng.random_range(1.0 - jitter..=1.0 + jitter)
        } else {
            1.0
        };
        nominal.mul_f64(factor)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudgetConfig {
    /// Retries allowed as a percentage of the calls in the window.
    pub pct: u32,
    /// Retries always allowed per second of window, however few the calls.
    pub min_per_sec: u32,
    pub window: Duration,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        Self {
            pct: 20,
            min_per_sec: 10,
            window: Duration::from_secs(10),
        }
    }
}

/// Calls and retries of the last window, shared by every worker.
#[derive(Debug)]
pub struct RetryBudget {
    config: RetryBudgetConfig,
    state: Mutex<BudgetState>,
}

#[derive(Debug, Default)]
struct BudgetState {
    calls: VecDeque<Instant>,
    retries: VecDeque<Instant>,
}

impl RetryBudget {
    pub fn new(config: RetryBudgetConfig) -> Self {
        Self {
            config,
            state: Mutex::default(),
        }
    }

    pub fn record_call(&self, now: Instant) {
        let mut state = self.lock(now);
        state.calls.push_back(now);
    }

    /// Takes one retry from the budget, if there is one left.
    pub fn try_retry(&self, now: Instant) -> bool {
        let mut state = self.lock(now);
        let floor =
            u64::from(self.config.min_per_sec) * self.config.window.as_millis() as u64 / 1000;
        let share = state.calls.len() as u64 * u64::from(self.config.pct) / 100;
        if (state.retries.len() as u64) < floor + share {
            state.retries.push_back(now);
            true
        } else {
            false
        }
    }

    fn lock(&self, now: Instant) -> std::sync::MutexGuard<'_, BudgetState> {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let window = self.config.window;
        let state = &mut *guard;
        for queue in [&mut state.calls, &mut state.retries] {
            while queue
                .front()
                .is_some_and(|&at| now.saturating_duration_since(at) >= window)
            {
                queue.pop_front();
            }
        }
        guard
    }
}

/// Sleeping, injectable: real timers in the service, a clock that jumps in tests.
pub trait Sleeper {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + '_>>;
}

pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + '_>> {
        Box::pin(actix_rt::time::sleep(duration))
    }
}

/// What one pass through breaker, bulkhead and HTTP produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// The attempt was sent (or its connection tried).
    Http(Attempt),
    /// The circuit breaker refused it.
    CircuitOpen { retry_after: Duration },
    /// The bulkhead had no permit within the wait.
    BulkheadFull,
}

/// What the retry loop tells an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptInfo {
    /// 0 for the first attempt.
    pub index: u32,
    pub deadline: Instant,
    /// The pause taken before this attempt.
    pub backoff: Duration,
}

/// How the call ended without a charge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// Payment-service refused the charge for good (decline, invalid).
    #[error("declined: {detail}")]
    Declined { detail: String },
    /// No charge confirmed; `reached` if an attempt may have been processed.
    #[error("{detail}")]
    Failed { reached: bool, detail: String },
    /// The budget ran out; an attempt may have been processed.
    #[error("payment budget ran out")]
    TimedOut,
    /// The breaker is open and no attempt reached payment.
    #[error("circuit breaker open")]
    CircuitOpen { retry_after: Duration },
    /// No bulkhead permit in time and no attempt reached payment.
    #[error("bulkhead limit reached")]
    BulkheadFull,
}

impl PaymentError {
    /// Whether a charge may exist although none was confirmed.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            Self::Failed { reached, .. } => *reached,
            Self::TimedOut => true,
            Self::Declined { .. } | Self::CircuitOpen { .. } | Self::BulkheadFull => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallReport {
    pub result: Result<Receipt, PaymentError>,
    pub attempts: u32,
    /// A retry was wanted but the retry budget refused it.
    pub budget_exhausted: bool,
}

pub struct Retrier<'a> {
    pub policy: RetryPolicy,
    pub budget: &'a RetryBudget,
    pub clock: &'a dyn Clock,
    pub sleeper: &'a dyn Sleeper,
}

impl Retrier<'_> {
    pub async fn run<F, Fut>(
        &self,
        deadline: Instant,
        rng: &mut StdRng,
        mut attempt: F,
    ) -> CallReport
    where
        F: FnMut(AttemptInfo) -> Fut,
        Fut: Future<Output = AttemptResult>,
    {
        self.budget.record_call(self.clock.now());
        let mut attempts = 0;
        let mut reached = false;
        let mut last: Option<Attempt> = None;
        let mut backoff = Duration::ZERO;
        let mut budget_exhausted = false;
        let end = |result, attempts, budget_exhausted| CallReport {
            result,
            attempts,
            budget_exhausted,
        };

        loop {
            if self.clock.now() >= deadline {
                break;
            }
            let info = AttemptInfo {
                index: attempts,
                deadline,
                backoff,
            };
            attempts += 1;
            match attempt(info).await {
                AttemptResult::Http(Attempt::Charged { receipt, .. }) => {
                    return end(Ok(receipt), attempts, false);
                }
                AttemptResult::Http(Attempt::Rejected { detail, .. }) => {
                    return end(Err(PaymentError::Declined { detail }), attempts, false);
                }
                AttemptResult::Http(failed) => {
                    reached |= failed.may_have_reached_payment();
                    last = Some(failed);
                }
                AttemptResult::CircuitOpen { retry_after } if !reached => {
                    return end(
                        Err(PaymentError::CircuitOpen { retry_after }),
                        attempts,
                        false,
                    );
                }
                AttemptResult::BulkheadFull if !reached => {
                    return end(Err(PaymentError::BulkheadFull), attempts, false);
                }
                // A retry refused locally after an attempt that may have
                // charged: the outcome of that attempt is what matters.
                AttemptResult::CircuitOpen { .. } | AttemptResult::BulkheadFull => break,
            }
            if attempts >= self.policy.max_attempts {
                break;
            }
            let now = self.clock.now();
            let pause = match last.as_ref().and_then(retry_after) {
                Some(wait) if now + wait > deadline => break,
                Some(wait) => wait,
                None => self.policy.backoff(attempts, rng),
            };
            if now + pause >= deadline {
                break;
            }
            if !self.budget.try_retry(now) {
                budget_exhausted = true;
                tracing::info!("retry.budget_exhausted");
                break;
            }
            match &last {
                Some(Attempt::Failed { status, .. }) => tracing::info!(
                    http.response.status_code = status.as_u16(),
                    retry.backoff_ms = pause.as_millis() as u64,
                    "retry_due_to_status"
                ),
                other => tracing::info!(
                    error = ?other,
                    retry.backoff_ms = pause.as_millis() as u64,
                    "retry_due_to_error"
                ),
            }
            backoff = pause;
            self.sleeper.sleep(pause).await;
        }
        end(Err(give_up(last, reached)), attempts, budget_exhausted)
    }
}

/// The error once no more attempts will be made, from the last one made.
fn give_up(last: Option<Attempt>, reached: bool) -> PaymentError {
    match last {
        None | Some(Attempt::TimedOut) => PaymentError::TimedOut,
        // Payment-service's own 504: the budget it was given was too short.
        Some(Attempt::Failed {
            status: StatusCode::GATEWAY_TIMEOUT,
            ..
        }) => PaymentError::TimedOut,
        Some(Attempt::Failed { status, .. }) => PaymentError::Failed {
            reached,
            detail: format!("payment-service answered {status}"),
        },
        Some(Attempt::ConnectFailed(e)) => PaymentError::Failed {
            reached,
            detail: format!("payment-service unreachable: {e}"),
        },
        Some(Attempt::Broken(e)) => PaymentError::Failed {
            reached,
            detail: format!("connection to payment-service broke: {e}"),
        },
        Some(Attempt::Charged { .. } | Attempt::Rejected { .. }) => {
            unreachable!("definitive outcomes return before giving up")
        }
    }
}

/// `Retry-After` counts only on 429 and 503.
fn retry_after(attempt: &Attempt) -> Option<Duration> {
    match attempt {
        Attempt::Failed {
            status: StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE,
            retry_after,
        } => *retry_after,
        _ => None,
    }
}
