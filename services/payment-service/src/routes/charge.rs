//! `POST /charge`: the charge pipeline.
//!
//! Order matters here. The caller's deadline (`X-Request-Timeout-Ms`) comes
//! first: if the work cannot finish in time the answer is an immediate 504
//! with nothing charged, instead of working for a caller that has already
//! given up. Then the injected delay, on every request: a slow dependency is
//! slow to fail too, as the Go original's sleeps before its checks. Then the
//! injected refusals (429, 500), which charge nothing; the replay of a known
//! key (or the refusal of a voided one); the simulated `validate` and
//! `gatewayCall` steps; the decline rule; a last deadline check; and only
//! then the durable write, which looks at the key again under the ledger's
//! lock. `fail_after_charge` strikes after the write: the charge exists but
//! the caller sees a 500, exactly the case a retry with the same key must
//! not double-charge.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use common::body::json_body;
use common::domain::{
    Amount, Currency, FieldError, IdempotencyKey, MerchantId, OrderId, PaymentDetails, json_string,
    required,
};
use common::headers::{REQUEST_TIMEOUT, idempotency_key};
use common::openapi::{BodyTimeout, TooLarge, Unauthorized};
use common::problem::Problem;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;
use tracing::Instrument;

use crate::error::ChargeError;
use crate::faults::FaultPlan;
use crate::ledger::{Charge, ChargeRequest, KeyEnd, Recorded};
use crate::state::AppState;

/// Amounts above this are declined (402), as a card issuer would.
pub const DECLINE_ABOVE: Decimal = Decimal::from_parts(10_000, 0, 0, false, 0);

/// The largest budget taken (2^53 - 1, as the OpenAPI description says:
/// the largest integer every JSON reader holds exactly); the deadline is
/// added with `checked_add`, so no budget can overflow the clock.
pub const MAX_TIMEOUT_MS: u64 = 9_007_199_254_740_991;

/// Fields are read as raw JSON so that a field of the wrong type is a 422
/// naming it; the schema is the parsed types'.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChargeBody {
    #[schema(value_type = OrderId, required = true)]
    order_id: Option<Box<RawValue>>,
    #[schema(value_type = MerchantId, required = true)]
    merchant_id: Option<Box<RawValue>>,
    #[schema(value_type = Amount, required = true)]
    amount: Option<Box<RawValue>>,
    #[schema(value_type = Currency, required = true)]
    currency: Option<Box<RawValue>>,
}

impl ChargeBody {
    fn into_request(self) -> Result<ChargeRequest, Vec<FieldError>> {
        let order_id = required(&self.order_id, "order_id")
            .and_then(|raw| json_string(raw, "order_id"))
            .and_then(|id| OrderId::parse(&id));
        let details = PaymentDetails::parse(&self.merchant_id, &self.amount, &self.currency);
        match (order_id, details) {
            (Ok(order_id), Ok(details)) => Ok(ChargeRequest { order_id, details }),
            (order_id, details) => {
                let mut errors: Vec<_> = order_id.err().into_iter().collect();
                errors.extend(details.err().unwrap_or_default());
                Err(errors)
            }
        }
    }
}

/// Charges once per `Idempotency-Key`.
#[utoipa::path(
    post,
    path = "/charge",
    tag = "charges",
    security(("service_key" = [])),
    params(
        ("Idempotency-Key" = IdempotencyKey, Header, description = "One charge per key, ever (order-service sends the order id)"),
        ("X-Request-Timeout-Ms" = Option<u64>, Header, nullable = false, maximum = 9_007_199_254_740_991_u64, description = "The caller's remaining budget: answered 504 at once, charging nothing, when the work cannot finish within it"),
    ),
    request_body(content = ChargeBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Charged now", body = Charge),
        (status = 200, description = "Charged before under this key, for the same body: the original charge", body = Charge),
        (status = 400, description = "Malformed JSON, wrong content type, unknown field, missing or bad header", body = Problem, content_type = "application/problem+json"),
        (status = 401, response = Unauthorized),
        (status = 402, description = "Declined (amount over 10,000)", body = Problem, content_type = "application/problem+json"),
        (status = 408, response = BodyTimeout),
        (status = 409, description = "The key was voided (`POST /charges/{key}/void`): it is never charged", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = TooLarge),
        (status = 422, description = "A field fails validation, or the key was used for another body", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited (injected fault)", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds"))),
        (status = 500, description = "Injected fault: before charging, or after the charge was recorded", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The ledger could not record the charge durably, or its write queue is full; nothing was charged", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds"))),
        (status = 504, description = "Cannot finish within X-Request-Timeout-Ms; nothing was charged", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn charge(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ChargeError> {
    let received = Instant::now();
    state.requests.fetch_add(1, Ordering::Relaxed);
    let key = idempotency_key(req.headers())
        .map_err(ChargeError::BadHeader)?
        .ok_or(ChargeError::MissingKey)?;
    let deadline = deadline(&req, received)?;
    let request = json_body::<ChargeBody>(&req, payload)
        .await
        .map_err(ChargeError::Body)?
        .into_request()
        .map_err(ChargeError::Validation)?;
    let plan = state.faults.plan();
    count_faults(&state, &plan);
    let span = tracing::info_span!(
        "processCharge",
        order.id = %request.order_id,
        idempotency.key = %key,
        fault.delay_ms = plan.delay.as_millis() as i64,
        fault.rate_limited = plan.rate_limited,
        fault.error = plan.error_before_charge,
        fault.fail_after_charge = plan.fail_after_charge,
    );
    let result = process(&state, key, request, plan, deadline)
        .instrument(span)
        .await;
    let label = match &result {
        Ok(response) if response.status() == StatusCode::CREATED => "created",
        Ok(_) => "replayed",
        Err(ChargeError::Declined(_)) => "declined",
        Err(ChargeError::KeyReused) => "rejected",
        Err(ChargeError::Voided) => "voided",
        Err(ChargeError::DeadlineExceeded) => "deadline_exceeded",
        Err(ChargeError::RateLimited) => "rate_limited",
        Err(ChargeError::FailedAfterCharge) => "failed_after_charge",
        Err(_) => "error",
    };
    state.metrics.charges.with_label_values(&[label]).inc();
    result
}

fn count_faults(state: &AppState, plan: &FaultPlan) {
    let faults = &state.metrics.faults;
    for (fired, fault) in [
        (!plan.delay.is_zero(), "delay"),
        (plan.rate_limited, "rate_limit"),
        (plan.error_before_charge && !plan.rate_limited, "error"),
        (plan.fail_after_charge, "fail_after_charge"),
    ] {
        if fired {
            faults.with_label_values(&[fault]).inc();
        }
    }
}

async fn process(
    state: &AppState,
    key: IdempotencyKey,
    request: ChargeRequest,
    plan: FaultPlan,
    deadline: Option<Instant>,
) -> Result<HttpResponse, ChargeError> {
    let work = plan.delay + state.work.validate + state.work.gateway;
    if deadline.is_some_and(|d| Instant::now() + work > d) {
        return Err(ChargeError::DeadlineExceeded);
    }
    simulate(plan.delay).await;
    if plan.rate_limited {
        return Err(ChargeError::RateLimited);
    }
    if plan.error_before_charge {
        return Err(ChargeError::Injected);
    }

    match state.ledger.end_of(&key) {
        Some(KeyEnd::Charged { charge }) if charge.matches(&request) => {
            return respond(StatusCode::OK, charge, plan);
        }
        Some(KeyEnd::Charged { .. }) => return Err(ChargeError::KeyReused),
        Some(KeyEnd::Voided { .. }) => return Err(ChargeError::Voided),
        None => {}
    }

    simulate(state.work.validate)
        .instrument(tracing::info_span!("validate"))
        .await;

    let gateway = tracing::info_span!("gatewayCall", transaction.id = tracing::field::Empty);
    let recorded = async {
        simulate(state.work.gateway).await;
        let amount = request.details.amount.value();
        if amount > DECLINE_ABOVE {
            return Err(ChargeError::Declined(format!(
                "amount {amount} is over the limit of {DECLINE_ABOVE}"
            )));
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            return Err(ChargeError::DeadlineExceeded);
        }
        // With a log, this waits for the writer's sync (group commit)
        // without holding a thread.
        let recorded = state
            .ledger
            .record(key, &request)
            .await
            .map_err(ChargeError::from)?;
        let charge = match &recorded {
            Recorded::New(c) | Recorded::Existing(c) => c,
        };
        tracing::Span::current().record("transaction.id", charge.transaction_id.as_str());
        Ok(recorded)
    }
    .instrument(gateway)
    .await?;

    match recorded {
        Recorded::New(charge) => respond(StatusCode::CREATED, charge, plan),
        Recorded::Existing(charge) => respond(StatusCode::OK, charge, plan),
    }
}

fn respond(
    status: StatusCode,
    charge: Charge,
    plan: FaultPlan,
) -> Result<HttpResponse, ChargeError> {
    if plan.fail_after_charge {
        tracing::info!(transaction.id = %charge.transaction_id, "charge recorded, answering 500 (injected)");
        return Err(ChargeError::FailedAfterCharge);
    }
    Ok(HttpResponse::build(status).json(charge))
}

/// Simulated work. Zero is skipped, not slept: the timer's 1 ms granularity
/// would otherwise add up to a millisecond per step to a benchmark.
async fn simulate(duration: Duration) {
    if !duration.is_zero() {
        actix_rt::time::sleep(duration).await;
    }
}

fn deadline(req: &HttpRequest, received: Instant) -> Result<Option<Instant>, ChargeError> {
    let Some(value) = req.headers().get(REQUEST_TIMEOUT) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&ms| ms <= MAX_TIMEOUT_MS)
        .and_then(|ms| received.checked_add(Duration::from_millis(ms)))
        .map(Some)
        .ok_or_else(|| {
            ChargeError::BadHeader(FieldError::new(
                REQUEST_TIMEOUT,
                format!("must be a whole number of milliseconds, at most {MAX_TIMEOUT_MS}"),
            ))
        })
}
