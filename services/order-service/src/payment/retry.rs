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
    /// The circuit breaker refused it (until when: none while an operator
    /// holds it open).
    CircuitOpen { retry_after: Option<Duration> },
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
    /// The order's payment key was voided: it is never charged.
    #[error("voided")]
    Voided,
    /// No charge confirmed; `reached` if an attempt may have been processed.
    #[error("{why}")]
    Failed { reached: bool, why: Failure },
    /// The budget ran out; an attempt may have been processed.
    #[error("payment budget ran out")]
    TimedOut,
    /// The breaker is open and no attempt reached payment; it probes again
    /// after `retry_after`, or not at all while an operator holds it open.
    #[error("circuit breaker open")]
    CircuitOpen { retry_after: Option<Duration> },
    /// No bulkhead permit in time and no attempt reached payment.
    #[error("bulkhead limit reached")]
    BulkheadFull,
}

/// What the last attempt of a failed call met.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// A 5xx, or a 429 with no retry left.
    #[error("payment-service answered {0}")]
    Answered(StatusCode),
    /// The connection could not be opened (the OS's words go to the log).
    #[error("payment-service unreachable")]
    Unreachable,
    /// A 4xx other than a decline (402) or a voided key: refused before
    /// payment's ledger.
    #[error("payment-service refused the request with {0}")]
    Rejected(StatusCode),
    #[error("the connection to payment-service broke")]
    Broke,
    /// Charged, for an order another writer settled otherwise: what the
    /// store's rules exclude (an order is never answered 201 unless
    /// completed).
    #[error("payment-service charged an order settled otherwise")]
    SettledOtherwise,
}

impl PaymentError {
    /// Whether a charge may exist although none was confirmed.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            Self::Failed { reached, .. } => *reached,
            Self::TimedOut => true,
            Self::Declined { .. }
            | Self::Voided
            | Self::CircuitOpen { .. }
            | Self::BulkheadFull => false,
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
        while self.clock.now() < deadline {
            let info = AttemptInfo {
                index: attempts,
                deadline,
                backoff,
            };
            attempts += 1;
            match step(attempt(info).await, &mut reached, &mut last) {
                Step::Done(result) => return end(result, attempts, false),
                Step::GiveUp => break,
                Step::Again => {}
            }
            let next = self.pause(attempts, last.as_ref(), deadline, rng);
            let pause = match next {
                Pause::For(pause) => pause,
                Pause::NoTime => break,
                Pause::NoBudget => {
                    budget_exhausted = true;
                    tracing::info!("retry.budget_exhausted");
                    break;
                }
            };
            log_retry(last.as_ref(), pause);
            backoff = pause;
            self.sleeper.sleep(pause).await;
        }
        end(Err(give_up(last, reached)), attempts, budget_exhausted)
    }

    /// The pause before the next attempt, if one is allowed and fits.
    fn pause(
        &self,
        attempts: u32,
        last: Option<&Attempt>,
        deadline: Instant,
        rng: &mut StdRng,
    ) -> Pause {
        if attempts >= self.policy.max_attempts {
            return Pause::NoTime;
        }
        let now = self.clock.now();
        let pause = match last.and_then(retry_after) {
            Some(wait) => wait,
            None => self.policy.backoff(attempts, rng),
        };
        if now + pause >= deadline {
            return Pause::NoTime;
        }
        if !self.budget.try_retry(now) {
            return Pause::NoBudget;
        }
        Pause::For(pause)
    }
}

/// What one attempt's result means for the call.
enum Step {
    /// The call's outcome.
    Done(Result<Receipt, PaymentError>),
    /// Another attempt may tell more.
    Again,
    /// No further attempt: the last one's outcome is the call's.
    GiveUp,
}

fn step(result: AttemptResult, reached: &mut bool, last: &mut Option<Attempt>) -> Step {
    match result {
        AttemptResult::Http(Attempt::Charged { receipt, .. }) => Step::Done(Ok(receipt)),
        AttemptResult::Http(Attempt::Rejected { status, detail })
            if status == StatusCode::PAYMENT_REQUIRED =>
        {
            Step::Done(Err(PaymentError::Declined { detail }))
        }
        // Refused before payment's ledger (credentials, a request it would
        // not read): never retried, and this attempt charged nothing — but
        // an earlier one of the call may have, so it is no decline.
        AttemptResult::Http(Attempt::Rejected { status, .. }) => {
            Step::Done(Err(PaymentError::Failed {
                reached: *reached,
                why: Failure::Rejected(status),
            }))
        }
        AttemptResult::Http(Attempt::Voided) => Step::Done(Err(PaymentError::Voided)),
        AttemptResult::Http(failed) => {
            *reached |= failed.may_have_reached_payment();
            *last = Some(failed);
            Step::Again
        }
        AttemptResult::CircuitOpen { retry_after } if !*reached => {
            Step::Done(Err(PaymentError::CircuitOpen { retry_after }))
        }
        AttemptResult::BulkheadFull if !*reached => Step::Done(Err(PaymentError::BulkheadFull)),
        // A retry refused locally after an attempt that may have charged:
        // the outcome of that attempt is what matters.
        AttemptResult::CircuitOpen { .. } | AttemptResult::BulkheadFull => Step::GiveUp,
    }
}

enum Pause {
    For(Duration),
    /// No attempt left, or none that fits before the deadline.
    NoTime,
    /// The retry budget refused it.
    NoBudget,
}

fn log_retry(last: Option<&Attempt>, pause: Duration) {
    match last {
        Some(Attempt::Failed { status, .. }) => tracing::info!(
            http.response.status_code = i64::from(status.as_u16()),
            retry.backoff_ms = pause.as_millis() as i64,
            "retry_due_to_status"
        ),
        other => tracing::info!(
            error = ?other,
            retry.backoff_ms = pause.as_millis() as i64,
            "retry_due_to_error"
        ),
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
            why: Failure::Answered(status),
        },
        // The OS's words (`Connection refused (os error 111)`) go to the
        // log; the client and the order's reason get ours.
        Some(Attempt::ConnectFailed(e)) => {
            tracing::warn!(cause = %e, "payment-service unreachable");
            PaymentError::Failed {
                reached,
                why: Failure::Unreachable,
            }
        }
        Some(Attempt::Broken(e)) => {
            tracing::warn!(cause = %e, "connection to payment-service broke");
            PaymentError::Failed {
                reached,
                why: Failure::Broke,
            }
        }
        Some(Attempt::Charged { .. } | Attempt::Rejected { .. } | Attempt::Voided) => {
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;

    use actix_web::http::StatusCode;
    use actors::clock::ManualClock;
    use rand::SeedableRng;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Sleeping moves the manual clock and is written down.
    struct JumpingSleeper {
        clock: ManualClock,
        slept: RefCell<Vec<Duration>>,
    }

    impl Sleeper for JumpingSleeper {
        fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + '_>> {
            self.clock.advance(duration);
            self.slept.borrow_mut().push(duration);
            Box::pin(std::future::ready(()))
        }
    }

    fn failed(status: u16) -> AttemptResult {
        AttemptResult::Http(Attempt::Failed {
            status: StatusCode::from_u16(status).unwrap(),
            retry_after: None,
        })
    }

    fn charged() -> AttemptResult {
        AttemptResult::Http(Attempt::Charged {
            receipt: Receipt {
                transaction_id: "txn_1".into(),
            },
            status: StatusCode::CREATED,
        })
    }

    fn rejected(status: u16) -> AttemptResult {
        AttemptResult::Http(Attempt::Rejected {
            status: StatusCode::from_u16(status).unwrap(),
            detail: "no".into(),
        })
    }

    struct Run {
        report: CallReport,
        infos: Vec<AttemptInfo>,
        slept: Vec<Duration>,
        elapsed: Duration,
    }

    /// Runs the retry loop over scripted attempts, each taking `took`.
    fn run_with(
        budget: Duration,
        retry_budget: &RetryBudget,
        seed: u64,
        script: Vec<(AttemptResult, Duration)>,
    ) -> Run {
        let clock = ManualClock::default();
        let start = clock.now();
        let sleeper = JumpingSleeper {
            clock: clock.clone(),
            slept: RefCell::default(),
        };
        let retrier = Retrier {
            policy: RetryPolicy::default(),
            budget: retry_budget,
            clock: &clock,
            sleeper: &sleeper,
        };
        let script = RefCell::new(VecDeque::from(script));
        let infos = RefCell::new(Vec::new());
        let mut rng = StdRng::seed_from_u64(seed);
        let report = futures_executor(retrier.run(start + budget, &mut rng, |info| {
            infos.borrow_mut().push(info);
            let (result, took) = script.borrow_mut().pop_front().expect("script long enough");
            clock.advance(took.min(info.deadline.saturating_duration_since(clock.now())));
            std::future::ready(result)
        }));
        Run {
            report,
            infos: infos.into_inner(),
            slept: sleeper.slept.into_inner(),
            elapsed: clock.now() - start,
        }
    }

    fn run(script: Vec<(AttemptResult, Duration)>) -> Run {
        run_with(
            Duration::from_millis(500),
            &RetryBudget::new(RetryBudgetConfig::default()),
            7,
            script,
        )
    }

    /// The loop never really waits here: every future is ready at once.
    fn futures_executor<F: Future>(future: F) -> F::Output {
        actix_rt::System::new().block_on(future)
    }

    #[test]
    fn transient_failures_are_retried_up_to_three_attempts() {
        let r = run(vec![
            (failed(500), MS),
            (failed(429), MS),
            (failed(503), MS),
        ]);
        assert_eq!(r.report.attempts, 3);
        assert_eq!(
            r.report.result,
            Err(PaymentError::Failed {
                reached: true,
                why: Failure::Answered(StatusCode::SERVICE_UNAVAILABLE)
            })
        );
        assert_eq!(r.slept.len(), 2);
        assert_eq!(
            r.infos.iter().map(|i| i.index).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(r.infos[1].backoff, r.slept[0]);
    }

    #[test]
    fn a_success_after_a_failure_is_a_success() {
        let r = run(vec![(failed(502), MS), (charged(), MS)]);
        assert_eq!(r.report.attempts, 2);
        assert_eq!(r.report.result.unwrap().transaction_id, "txn_1");
    }

    #[test]
    fn backoff_doubles_within_the_jitter_bounds() {
        let policy = RetryPolicy::default();
        for seed in 0..500 {
            let mut rng = StdRng::seed_from_u64(seed);
            for (retry, nominal) in [(1, 50.0), (2, 100.0), (3, 200.0)] {
                let ms = policy.backoff(retry, &mut rng).as_secs_f64() * 1000.0;
                assert!(
                    ms >= nominal * 0.7 - 1e-9 && ms <= nominal * 1.3 + 1e-9,
                    "retry {retry}: {ms} ms"
                );
            }
        }
        let r = run(vec![
            (failed(500), MS),
            (failed(500), MS),
            (failed(500), MS),
        ]);
        let ms: Vec<f64> = r.slept.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        assert!(
            (35.0..=65.0).contains(&ms[0]) && (70.0..=130.0).contains(&ms[1]),
            "{ms:?}"
        );
    }

    #[test]
    fn jitter_spreads_the_backoff() {
        let policy = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(1);
        let samples: std::collections::HashSet<_> =
            (0..50).map(|_| policy.backoff(1, &mut rng)).collect();
        assert!(samples.len() > 40);
    }

    #[test]
    fn other_client_errors_are_never_retried_and_only_a_402_is_a_decline() {
        for status in [400, 401, 402, 404, 408, 409, 422] {
            let r = run(vec![(rejected(status), MS)]);
            assert_eq!(r.report.attempts, 1, "{status}");
            match status {
                402 => assert!(matches!(
                    r.report.result,
                    Err(PaymentError::Declined { .. })
                )),
                _ => assert_eq!(
                    r.report.result,
                    Err(PaymentError::Failed {
                        reached: false,
                        why: Failure::Rejected(StatusCode::from_u16(status).unwrap()),
                    }),
                    "{status}"
                ),
            }
            assert!(r.slept.is_empty());
        }
    }

    /// Found by the protocol's model (`model/`): a 4xx after an attempt
    /// that may have charged was a decline, and the order `failed` with
    /// "nothing charged" while payment held the charge.
    #[test]
    fn a_refusal_after_an_attempt_that_may_have_charged_is_not_a_decline() {
        for status in [400, 401, 408, 422] {
            let r = run(vec![(failed(500), MS), (rejected(status), MS)]);
            assert_eq!(r.report.attempts, 2);
            let result = r.report.result;
            assert!(
                result.as_ref().is_err_and(PaymentError::outcome_unknown),
                "{result:?}"
            );
        }
    }

    #[test]
    fn the_budget_is_never_exceeded() {
        // Each attempt would take 200 ms; 500 ms allow two and part of a third.
        let slow = Duration::from_millis(200);
        let r = run(vec![
            (failed(500), slow),
            (failed(500), slow),
            (failed(500), slow),
        ]);
        assert!(r.elapsed <= Duration::from_millis(500), "{:?}", r.elapsed);
        for info in &r.infos {
            assert_eq!(info.deadline - r.infos[0].deadline, Duration::ZERO);
        }
        // An attempt that times out at the deadline ends the call as a timeout.
        let r = run(vec![(
            AttemptResult::Http(Attempt::TimedOut),
            Duration::from_secs(1),
        )]);
        assert_eq!(r.report.result, Err(PaymentError::TimedOut));
        assert_eq!(r.report.attempts, 1);
        assert_eq!(r.elapsed, Duration::from_millis(500));
    }

    #[test]
    fn no_backoff_is_started_that_would_end_past_the_deadline() {
        // After 480 ms, even the shortest backoff (35 ms) would overrun.
        let r = run(vec![(failed(500), Duration::from_millis(480))]);
        assert_eq!(r.report.attempts, 1);
        assert!(r.slept.is_empty());
    }

    #[test]
    fn a_retry_after_longer_than_the_budget_stops_at_once() {
        let limited = AttemptResult::Http(Attempt::Failed {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(Duration::from_secs(1)),
        });
        let r = run(vec![(limited, MS)]);
        assert_eq!(r.report.attempts, 1);
        assert!(r.slept.is_empty());
        assert!(matches!(
            r.report.result,
            Err(PaymentError::Failed { reached: true, .. })
        ));
    }

    #[test]
    fn a_shorter_retry_after_replaces_the_backoff() {
        let unavailable = AttemptResult::Http(Attempt::Failed {
            status: StatusCode::SERVICE_UNAVAILABLE,
            retry_after: Some(Duration::from_secs(1)),
        });
        let r = run_with(
            Duration::from_secs(5),
            &RetryBudget::new(RetryBudgetConfig::default()),
            7,
            vec![(unavailable, MS), (charged(), MS)],
        );
        assert_eq!(r.slept, [Duration::from_secs(1)]);
        assert!(r.report.result.is_ok());
    }

    #[test]
    fn a_payment_504_or_a_timeout_ends_as_a_timeout() {
        let r = run(vec![
            (failed(500), MS),
            (failed(504), MS),
            (failed(504), MS),
        ]);
        assert_eq!(r.report.result, Err(PaymentError::TimedOut));
    }

    #[test]
    fn unreachable_payment_is_a_failure_that_charged_nothing() {
        let refused = || {
            (
                AttemptResult::Http(Attempt::ConnectFailed("refused".into())),
                MS,
            )
        };
        let r = run(vec![refused(), refused(), refused()]);
        assert!(matches!(
            r.report.result,
            Err(PaymentError::Failed { reached: false, .. })
        ));
        assert!(!r.report.result.unwrap_err().outcome_unknown());
    }

    #[test]
    fn local_refusals_end_the_call_and_keep_a_reached_attempt_pending() {
        let open = AttemptResult::CircuitOpen {
            retry_after: Some(Duration::from_secs(30)),
        };
        let r = run(vec![(open.clone(), MS)]);
        assert_eq!(
            r.report.result,
            Err(PaymentError::CircuitOpen {
                retry_after: Some(Duration::from_secs(30))
            })
        );
        let r = run(vec![(AttemptResult::BulkheadFull, MS)]);
        assert_eq!(r.report.result, Err(PaymentError::BulkheadFull));
        let r = run(vec![(failed(500), MS), (open, MS)]);
        assert_eq!(r.report.attempts, 2);
        assert!(
            r.report.result.unwrap_err().outcome_unknown(),
            "the 500 may have charged"
        );
    }

    #[test]
    fn the_retry_budget_allows_twenty_percent_plus_ten_per_second() {
        let budget = RetryBudget::new(RetryBudgetConfig::default());
        let now = Instant::now();
        // No calls: the floor, 10/s over a 10 s window.
        assert_eq!((0..1000).filter(|_| budget.try_retry(now)).count(), 100);
        for _ in 0..1000 {
            budget.record_call(now);
        }
        // 20 % of 1000 calls more.
        assert_eq!((0..1000).filter(|_| budget.try_retry(now)).count(), 200);
        // Ten seconds on, the window is empty again.
        let later = now + Duration::from_secs(10);
        assert_eq!((0..1000).filter(|_| budget.try_retry(later)).count(), 100);
    }

    #[test]
    fn a_refused_retry_ends_the_call_as_exhausted() {
        let budget = RetryBudget::new(RetryBudgetConfig {
            pct: 20,
            min_per_sec: 0,
            window: Duration::from_secs(10),
        });
        let r = run_with(
            Duration::from_millis(500),
            &budget,
            7,
            vec![(failed(500), MS)],
        );
        assert!(r.report.budget_exhausted);
        assert_eq!(r.report.attempts, 1);
        assert!(matches!(r.report.result, Err(PaymentError::Failed { .. })));
        // Five calls earn one retry (20 %).
        let now = Instant::now();
        for _ in 0..4 {
            budget.record_call(now);
        }
        let r = run_with(
            Duration::from_millis(500),
            &budget,
            7,
            vec![(failed(500), MS), (failed(500), MS)],
        );
        assert_eq!(r.report.attempts, 2);
        assert!(r.report.budget_exhausted);
    }
}
