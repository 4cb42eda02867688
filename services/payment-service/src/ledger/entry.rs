//! What the ledger records under a key, once: a charge, or a void — the
//! promise that the key will never be charged. Both are lines of the log.
//!
//! A void is how a caller that cannot know whether its attempt arrived
//! makes sure it never will: order-service voids the key of an order it
//! answered "nothing was charged" when it could not record that answer
//! itself. Whichever of a charge and a void reaches the ledger first under
//! a key is the key's end; the other one is refused (a charge) or answered
//! with that charge (a void). Under the ledger's lock, not by clocks or
//! deadlines, so a request held up in a socket buffer cannot slip past.

use chrono::{DateTime, Utc};
use common::domain::{Amount, Currency, IdempotencyKey, MerchantId, OrderId, PaymentDetails};
use serde::{Deserialize, Serialize};

/// What a client asks to be charged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    pub order_id: OrderId,
    pub details: PaymentDetails,
}

/// A charge as recorded, acknowledged and replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Charge {
    pub transaction_id: String,
    pub status: ChargeStatus,
    pub order_id: OrderId,
    pub merchant_id: MerchantId,
    pub amount: Amount,
    pub currency: Currency,
    pub idempotency_key: IdempotencyKey,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChargeStatus {
    Approved,
}

impl Charge {
    pub(super) fn new(key: IdempotencyKey, request: &ChargeRequest) -> Self {
        Self {
            transaction_id: format!("txn_{}", uuid::Uuid::new_v4().simple()),
            status: ChargeStatus::Approved,
            order_id: request.order_id,
            merchant_id: request.details.merchant_id.clone(),
            amount: request.details.amount,
            currency: request.details.currency,
            idempotency_key: key,
            created_at: Utc::now(),
        }
    }

    /// Same body as the one this charge was made for (amounts compare by
    /// value: `10.5` and `10.50` are the same money).
    pub fn matches(&self, request: &ChargeRequest) -> bool {
        self.order_id == request.order_id
            && self.merchant_id == request.details.merchant_id
            && self.amount == request.details.amount
            && self.currency == request.details.currency
    }
}

/// A key that will never be charged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Void {
    pub idempotency_key: IdempotencyKey,
    pub voided_at: DateTime<Utc>,
}

impl Void {
    pub(super) fn new(key: IdempotencyKey) -> Self {
        Self {
            idempotency_key: key,
            voided_at: Utc::now(),
        }
    }
}

/// One line of the log. Untagged, so that a charge's line is the charge
/// alone, as it was before voids existed: old logs replay unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Entry {
    Charge(Charge),
    Void(Void),
}

impl Entry {
    /// Reads a line: a charge, else a void. (Not serde's untagged
    /// deserializer: it buffers the line in a form the exact amount
    /// cannot be read from.)
    pub fn parse(line: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(line)
            .map(Self::Charge)
            .or_else(|charge| {
                serde_json::from_slice(line)
                    .map(Self::Void)
                    .map_err(|_| charge)
            })
    }

    pub fn key(&self) -> &IdempotencyKey {
        match self {
            Self::Charge(charge) => &charge.idempotency_key,
            Self::Void(void) => &void.idempotency_key,
        }
    }
}

/// How a key ended, as `POST /charges/{key}/void` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum KeyEnd {
    /// Charged (before the void arrived): the charge stands.
    Charged { charge: Charge },
    /// Voided: no charge under this key, now or ever.
    Voided { void: Void },
}
