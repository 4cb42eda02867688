//! One HTTP attempt at a charge, classified by what it proves.
//!
//! The classification is about money, not HTTP: a refused connection proves
//! nothing was charged; a timeout or a 5xx proves nothing at all (the charge
//! may have been recorded before the failure), so the order must stay
//! `pending` until a later attempt with the same key tells.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use awc::error::{ConnectError, SendRequestError};
use common::domain::{Amount, Currency, MerchantId, OrderId};
use common::headers::{IDEMPOTENCY_KEY, REQUEST_TIMEOUT};
use serde::{Deserialize, Serialize};

use super::PaymentLink;
use crate::domain::Order;

/// Largest response body read from payment-service.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Receipt {
    pub transaction_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// 2xx: charged (now, or earlier under the same key).
    Charged {
        receipt: Receipt,
        status: StatusCode,
    },
    /// A 4xx other than 429: payment-service refuses this charge for good.
    Rejected { status: StatusCode, detail: String },
    /// 409 `charge-voided`: the key was voided; it is never charged.
    Voided,
    /// 5xx or 429: transient; the charge may or may not exist.
    Failed {
        status: StatusCode,
        retry_after: Option<Duration>,
    },
    /// No answer within the time given; the request may have been processed.
    TimedOut,
    /// The connection could not be opened: the request was never sent.
    ConnectFailed(String),
    /// The connection broke after the request was sent.
    Broken(String),
}

impl Attempt {
    /// Whether payment-service may have seen (and charged) this attempt.
    pub fn may_have_reached_payment(&self) -> bool {
        !matches!(self, Self::ConnectFailed(_))
    }

    /// The HTTP status, when an answer came.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Charged { status, .. }
            | Self::Rejected { status, .. }
            | Self::Failed { status, .. } => Some(*status),
            Self::Voided => Some(StatusCode::CONFLICT),
            _ => None,
        }
    }

    /// No answer in the time given, or payment's 504: it could not finish
    /// in what the call had left.
    pub fn out_of_time(&self) -> bool {
        matches!(
            self,
            Self::TimedOut
                | Self::Failed {
                    status: StatusCode::GATEWAY_TIMEOUT,
                    ..
                }
        )
    }
}

#[derive(Serialize)]
struct ChargeBody<'a> {
    order_id: OrderId,
    merchant_id: &'a MerchantId,
    amount: Amount,
    currency: Currency,
}

#[derive(Deserialize)]
struct ProblemBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    detail: Option<String>,
}

/// payment-service's problem type for a charge under a voided key.
const VOIDED: &str = "urn:reliable-orders:problem:charge-voided";

/// How a key ended, as `POST /charges/{key}/void` answers.
#[derive(Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum KeyEnd {
    Charged { charge: Receipt },
    Voided {},
}

/// What a void learned of an order's payment key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fence {
    /// Voided: nothing is charged under the key, now or ever.
    Voided,
    /// Charged before the void arrived.
    Charged(Receipt),
    /// No answer: nothing is known.
    Unknown(String),
}

/// Where charges go, split for the client span's attributes.
#[derive(Debug, Clone)]
pub struct ChargeUrl {
    pub full: String,
    pub host: String,
    pub port: u16,
}

/// Not `Send` (awc's client is per thread): build one per worker.
pub struct PaymentClient {
    http: awc::Client,
    charge_url: ChargeUrl,
    /// `…/charges/`, to which a key and `/void` are added.
    charges_url: String,
    /// `Bearer <PAYMENT_API_KEY>`, marked sensitive so no log shows it.
    authorization: HeaderValue,
}

impl PaymentClient {
    pub fn new(link: &PaymentLink, base_url: &str, api_key: &str) -> Self {
        // The budget is enforced around the whole attempt instead.
        let http = link.client(None);
        let base_url = base_url.trim_end_matches('/');
        let full = format!("{base_url}/charge");
        let uri: Option<actix_web::http::Uri> = full.parse().ok();
        let host = uri.as_ref().and_then(|u| u.host()).unwrap_or("").to_owned();
        let port = uri
            .as_ref()
            .and_then(|u| u.port_u16())
            .unwrap_or(if full.starts_with("https") { 443 } else { 80 });
        let mut authorization = HeaderValue::from_str(&format!("Bearer {api_key}"))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        authorization.set_sensitive(true);
        Self {
            http,
            charge_url: ChargeUrl { full, host, port },
            charges_url: format!("{base_url}/charges/"),
            authorization,
        }
    }

    pub fn charge_url(&self) -> &ChargeUrl {
        &self.charge_url
    }

    /// One attempt, given `time_left` for connect, send and the whole answer.
    pub async fn charge(&self, order: &Order, time_left: Duration) -> Attempt {
        match actix_rt::time::timeout(time_left, self.send(order, time_left)).await {
            Ok(attempt) => attempt,
            Err(_) => Attempt::TimedOut,
        }
    }

    async fn send(&self, order: &Order, time_left: Duration) -> Attempt {
        let body = ChargeBody {
            order_id: order.order_id,
            merchant_id: &order.merchant_id,
            amount: order.amount,
            currency: order.currency,
        };
        let mut request = self.http.post(&self.charge_url.full);
        // The trace continues in payment-service under this attempt's span.
        for (name, value) in observability::http::outgoing_trace_headers()
            .into_iter()
            .flatten()
        {
            request = request.insert_header((name, value));
        }
        let sent = request
            .insert_header((AUTHORIZATION, self.authorization.clone()))
            .insert_header((IDEMPOTENCY_KEY, order.order_id.to_string()))
            .insert_header((REQUEST_TIMEOUT, time_left.as_millis().to_string()))
            .send_json(&body)
            .await;
        let mut response = match sent {
            Ok(response) => response,
            // awc reports a connection that closed *after* the request was
            // sent, before any answer, as `Connect(Disconnected)`: payment
            // may have charged it (a SIGKILL between its sync and its
            // answer). Only a connection never made proves nothing was sent.
            Err(SendRequestError::Connect(ConnectError::Disconnected | ConnectError::H2(_))) => {
                return Attempt::Broken("the connection closed before an answer".into());
            }
            Err(SendRequestError::Connect(e)) => return Attempt::ConnectFailed(e.to_string()),
            Err(SendRequestError::Timeout) => return Attempt::TimedOut,
            Err(e) => return Attempt::Broken(e.to_string()),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = match response.body().limit(MAX_RESPONSE_BYTES).await {
            Ok(body) => body,
            Err(e) => return Attempt::Broken(format!("reading the response: {e}")),
        };
        if status.is_success() {
            match serde_json::from_slice::<Receipt>(&body) {
                Ok(receipt) => Attempt::Charged { receipt, status },
                Err(e) => Attempt::Broken(format!("unreadable charge receipt: {e}")),
            }
        } else if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
            let problem = serde_json::from_slice::<ProblemBody>(&body).ok();
            let (kind, detail) = problem.map_or((None, None), |p| (p.kind, p.detail));
            if status == StatusCode::CONFLICT && kind.as_deref() == Some(VOIDED) {
                return Attempt::Voided;
            }
            let detail = detail.unwrap_or_else(|| format!("payment-service answered {status}"));
            Attempt::Rejected { status, detail }
        } else {
            Attempt::Failed {
                status,
                retry_after,
            }
        }
    }
}

impl PaymentClient {
    /// Voids the order's payment key (`POST /charges/{order_id}/void`),
    /// given `time_left`: afterwards no attempt under it can charge, however
    /// late it arrives, unless one did before.
    pub async fn void(&self, order_id: OrderId, time_left: Duration) -> Fence {
        let url = format!("{}{order_id}/void", self.charges_url);
        let mut request = self.http.post(url);
        for (name, value) in observability::http::outgoing_trace_headers()
            .into_iter()
            .flatten()
        {
            request = request.insert_header((name, value));
        }
        let request = request.insert_header((AUTHORIZATION, self.authorization.clone()));
        let answer = async {
            let mut response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            let body = response
                .body()
                .limit(MAX_RESPONSE_BYTES)
                .await
                .map_err(|e| e.to_string())?;
            if !status.is_success() {
                return Err(format!("payment-service answered {status}"));
            }
            serde_json::from_slice::<KeyEnd>(&body).map_err(|e| e.to_string())
        };
        match actix_rt::time::timeout(time_left, answer).await {
            Ok(Ok(KeyEnd::Voided {})) => Fence::Voided,
            Ok(Ok(KeyEnd::Charged { charge })) => Fence::Charged(charge),
            Ok(Err(e)) => Fence::Unknown(e),
            Err(_) => Fence::Unknown("no answer in time".into()),
        }
    }
}
