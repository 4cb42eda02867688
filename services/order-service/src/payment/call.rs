//! The payment call: the contract's pipeline below the idempotency layer.
//!
//! budget → retry → circuit breaker → bulkhead → one HTTP attempt
//!
//! The budget is a deadline shared by every attempt and backoff. Each
//! attempt asks the breaker actor for admission, then the bulkhead actor for
//! a permit (waiting while the time left can still cover a call), then
//! makes the HTTP attempt with whatever time is left, and reports the
//! outcome to the breaker. Only attempts that reached payment-service count
//! as breaker outcomes: a bulkhead refusal is local overload.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use actors::bulkhead::{self, Bulkhead, BulkheadError};
use actors::circuit_breaker::{self, AdmitError, CircuitBreaker, Outcome};
use actors::clock::SharedClock;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tracing::{Instrument, Span, field::Empty};

use super::client::{Attempt, Fence, PaymentClient};
use super::retry::{
    AttemptInfo, AttemptResult, CallReport, Retrier, RetryBudget, RetryPolicy, TokioSleeper,
};
use crate::domain::Order;
use crate::metrics::OrderMetrics;

/// Settings of the pipeline.
#[derive(Debug, Clone, Copy)]
pub struct CallPolicy {
    pub budget: Duration,
    pub retry: RetryPolicy,
    pub bulkhead_max: usize,
}

impl CallPolicy {
    /// The longest one call can take, with a margin for the actor messages
    /// around it: past this, whoever waits on the call may assume it is lost
    /// (a half-open trial that never reported, an order nobody settled).
    pub fn longest_call(&self) -> Duration {
        self.budget + Duration::from_secs(1)
    }

    /// The least time a call must have had for its timeout (or payment's 504,
    /// the same news) to count against
    /// payment: two fifths of the budget, room for payment to slow down
    /// sevenfold from its usual ~26 ms. A call given less (a retry late in
    /// its budget; a permit handed over, as payment slowed down, to a
    /// caller whose wait the bulkhead had planned from the faster calls
    /// before) that times out says only that payment took longer than our
    /// own queue and retries left it: counted, ten such calls at once
    /// would open the breaker on a payment-service that answers every
    /// call.
    pub fn telling_timeout(&self) -> Duration {
        self.budget * 2 / 5
    }
}

/// What every payment call of a process shares: the breaker and the
/// bulkhead, the retry budget, and the clock.
#[derive(Clone)]
pub struct Pipeline {
    pub breaker: Addr<CircuitBreaker>,
    pub bulkhead: Addr<Bulkhead>,
    pub retry_budget: Arc<RetryBudget>,
    pub clock: SharedClock,
}

/// One per worker (the HTTP client is per thread); the [`Pipeline`] is
/// shared by all.
pub struct PaymentCall {
    client: PaymentClient,
    policy: CallPolicy,
    breaker: Addr<CircuitBreaker>,
    bulkhead: Addr<Bulkhead>,
    retry_budget: Arc<RetryBudget>,
    clock: SharedClock,
    /// Seeds each call's jitter RNG; seeded from `RETRY_SEED` when set.
    rng: RefCell<StdRng>,
    metrics: OrderMetrics,
}

impl PaymentCall {
    pub fn new(
        client: PaymentClient,
        policy: CallPolicy,
        pipeline: Pipeline,
        rng: StdRng,
        metrics: OrderMetrics,
    ) -> Self {
        let Pipeline {
            breaker,
            bulkhead,
            retry_budget,
            clock,
        } = pipeline;
        Self {
            client,
            policy,
            breaker,
            bulkhead,
            retry_budget,
            clock,
            rng: RefCell::new(rng),
            metrics,
        }
    }

    pub fn policy(&self) -> &CallPolicy {
        &self.policy
    }

    pub async fn charge(&self, order: &Order) -> CallReport {
        let span = tracing::info_span!(
            "callPayment",
            timeout_ms = self.policy.budget.as_millis() as i64,
            retry.attempts = Empty,
            retry.succeeded = Empty,
            retry.exhausted = Empty,
            retry.budget_exhausted = Empty,
            otel.status_code = Empty,
        );
        async {
            let deadline = self.clock.now() + self.policy.budget;
            let mut rng = StdRng::seed_from_u64(self.rng.borrow_mut().next_u64());
            let retrier = Retrier {
                policy: self.policy.retry,
                budget: &self.retry_budget,
                clock: self.clock.as_ref(),
                sleeper: &TokioSleeper,
            };
            let report = retrier
                .run(deadline, &mut rng, |info| self.attempt(order, info))
                .await;
            let span = Span::current();
            span.record("retry.attempts", i64::from(report.attempts));
            match &report.result {
                Ok(_) => span.record("retry.succeeded", true),
                Err(_) => span.record("retry.exhausted", true),
            };
            if report.budget_exhausted {
                span.record("retry.budget_exhausted", true);
                self.metrics.retry_budget_exhausted.inc();
            }
            if report.result.is_err() {
                span.record("otel.status_code", "ERROR");
            }
            report
        }
        .instrument(span)
        .await
    }

    /// Voids the order's payment key: the fence that keeps a promise of
    /// "nothing charged" the store could not record. Straight to
    /// payment-service, not through breaker or bulkhead (it is not a
    /// charge, and it is needed most when charges are failing), given the
    /// budget of a call.
    pub async fn void(&self, order: &Order) -> Fence {
        let span = tracing::info_span!(
            "voidCharge",
            otel.kind = "client",
            order.id = %order.order_id,
            void.outcome = Empty,
            otel.status_code = Empty,
        );
        async {
            let fence = self.client.void(order.order_id, self.policy.budget).await;
            let span = Span::current();
            match &fence {
                Fence::Voided => span.record("void.outcome", "voided"),
                Fence::Charged(_) => span.record("void.outcome", "charged"),
                Fence::Unknown(e) => {
                    tracing::warn!(error = %e, "voiding the order's payment key failed");
                    span.record("otel.status_code", "ERROR");
                    span.record("void.outcome", "unknown")
                }
            };
            fence
        }
        .instrument(span)
        .await
    }

    async fn attempt(&self, order: &Order, info: AttemptInfo) -> AttemptResult {
        if info.index > 0 {
            self.metrics.retries.inc();
        }
        let result = self.attempt_in_span(order, info).await;
        let outcome = match &result {
            AttemptResult::CircuitOpen { .. } => "circuit_open".to_owned(),
            AttemptResult::BulkheadFull => "bulkhead_full".to_owned(),
            AttemptResult::Http(Attempt::Charged { .. }) => "charged".to_owned(),
            AttemptResult::Http(Attempt::Rejected { status, .. }) => match status.as_u16() {
                402 => "declined".to_owned(),
                _ => "rejected".to_owned(),
            },
            AttemptResult::Http(Attempt::Voided) => "voided".to_owned(),
            AttemptResult::Http(Attempt::Failed { status, .. }) => status.as_str().to_owned(),
            AttemptResult::Http(Attempt::TimedOut) => "timeout".to_owned(),
            AttemptResult::Http(Attempt::ConnectFailed(_) | Attempt::Broken(_)) => {
                "connection".to_owned()
            }
        };
        self.metrics
            .attempts
            .with_label_values(&[outcome.as_str()])
            .inc();
        result
    }

    async fn attempt_in_span(&self, order: &Order, info: AttemptInfo) -> AttemptResult {
        let span = self.attempt_span(&info);
        self.gated(order, info, span.clone()).instrument(span).await
    }

    fn attempt_span(&self, info: &AttemptInfo) -> Span {
        let url = self.client.charge_url();
        tracing::info_span!(
            "POST",
            otel.kind = "client",
            retry.attempt = i64::from(info.index),
            retry.backoff_ms = info.backoff.as_millis() as i64,
            http.request.resend_count = (info.index > 0).then_some(i64::from(info.index)),
            cb.state = Empty,
            bulkhead.max = self.policy.bulkhead_max as i64,
            bulkhead.in_use = Empty,
            http.request.method = "POST",
            url.full = %url.full,
            server.address = %url.host,
            server.port = i64::from(url.port),
            http.response.status_code = Empty,
            error.type = Empty,
            otel.status_code = Empty,
        )
    }

    fn bulkhead_refused(&self, reason: &str) {
        self.metrics
            .bulkhead
            .rejected
            .with_label_values(&[reason])
            .inc();
    }

    /// One attempt through the breaker and the bulkhead, in its span. The
    /// actors are handed the attempt's own span, not the current one: in an
    /// unsampled trace it is none and they build nothing, where the current
    /// span (the root, the one an unsampled trace keeps) would have each
    /// handler enter it and ask whether a child is wanted.
    async fn gated(&self, order: &Order, info: AttemptInfo, span: Span) -> AttemptResult {
        // A pass reports `Cancelled` if this future is dropped before the
        // outcome is known, so a half-open trial slot is never lost.
        let pass = match circuit_breaker::admit(&self.breaker, span.clone()).await {
            Ok(pass) => {
                span.record("cb.state", pass.state().as_str());
                Some(pass)
            }
            Err(AdmitError::Open(rejection)) => {
                span.record("cb.state", rejection.state.as_str());
                failed(&span, "circuit_open");
                return AttemptResult::CircuitOpen {
                    retry_after: rejection.retry_after,
                };
            }
            // The breaker is advisory: while its actor restarts, attempts
            // go ahead untracked rather than fail.
            Err(AdmitError::Failed(_)) => None,
        };
        let report = |outcome| {
            if let Some(pass) = pass {
                pass.record(outcome, span.clone());
            }
        };
        let time_left = info.deadline.saturating_duration_since(self.clock.now());
        let permit = match bulkhead::acquire(&self.bulkhead, time_left, span.clone()).await {
            Ok(permit) => permit,
            Err(e) => {
                report(Outcome::NotAttempted);
                failed(&span, "bulkhead_full");
                self.bulkhead_refused(refusal_reason(e));
                if e == BulkheadError::Unavailable {
                    tracing::warn!("bulkhead actor unavailable; refusing the attempt");
                }
                return AttemptResult::BulkheadFull;
            }
        };
        span.record("bulkhead.in_use", permit.in_use as i64);
        let time_left = info.deadline.saturating_duration_since(self.clock.now());
        if time_left < Duration::from_millis(1) {
            // The budget went on waiting for the permit: local overload.
            report(Outcome::NotAttempted);
            failed(&span, "budget_exhausted");
            self.bulkhead_refused("budget_exhausted");
            return AttemptResult::BulkheadFull;
        }
        let attempt = self.client.charge(order, time_left).await;
        drop(permit);
        report(match &attempt {
            Attempt::Charged { .. } | Attempt::Rejected { .. } | Attempt::Voided => {
                Outcome::Success
            }
            _ if attempt.out_of_time() && time_left < self.policy.telling_timeout() => {
                Outcome::Inconclusive
            }
            _ => Outcome::Failure,
        });
        answered(&span, &attempt);
        AttemptResult::Http(attempt)
    }
}

/// The `reason` label of `bulkhead_rejected_total`.
fn refusal_reason(e: BulkheadError) -> &'static str {
    match e {
        BulkheadError::QueueFull => "queue_full",
        BulkheadError::Overloaded => "overloaded",
        BulkheadError::WaitTimedOut => "no_time",
        BulkheadError::Unavailable => "unavailable",
    }
}

/// The attempt's span ends in error, of this type.
fn failed(span: &Span, error_type: &str) {
    span.record("error.type", error_type);
    span.record("otel.status_code", "ERROR");
}

/// What the call's answer (or its absence) says on the attempt's span.
fn answered(span: &Span, attempt: &Attempt) {
    if let Some(status) = attempt.status() {
        span.record("http.response.status_code", i64::from(status.as_u16()));
    }
    match (attempt, attempt.status()) {
        (Attempt::Charged { .. }, _) => {}
        (Attempt::TimedOut, _) => failed(span, "timeout"),
        (Attempt::ConnectFailed(_) | Attempt::Broken(_), _) => failed(span, "connection"),
        (_, Some(status)) => failed(span, status.as_str()),
        (_, None) => {}
    }
}
