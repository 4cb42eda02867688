//! An order and its status. `pending` means "an attempt may have reached
//! payment-service and we do not know the outcome": the one status that
//! must never be read as either charged or not charged.

use chrono::{DateTime, SecondsFormat, Utc};
use common::domain::{Amount, Currency, MerchantId, OrderId};
use serde::{Serialize, Serializer};

use super::NewOrder;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    Completed,
    Failed,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    pub fn parse(status: &str) -> Option<Self> {
        [Self::Pending, Self::Completed, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == status)
    }

    /// The moves of an order's life: `pending` settles to `completed` or
    /// `failed`, and both are final. (A `failed` order was answered
    /// "nothing was charged, nor ever will be": no retry may revive it.)
    pub fn may_become(self, to: OrderStatus) -> bool {
        matches!((self, to), (OrderStatus::Pending, _))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Order {
    pub order_id: OrderId,
    pub status: OrderStatus,
    pub merchant_id: MerchantId,
    pub amount: Amount,
    pub currency: Currency,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    /// Why a `failed` order failed, or what left it `pending`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    /// An attempt may have reached payment-service and left a charge: from
    /// then on only a definitive answer may settle the order.
    #[serde(skip)]
    pub maybe_charged: bool,
    /// Payment calls started on this order. Each flow bumps it as it takes
    /// the order into a call, so a flow can tell whether another one has
    /// started since its own (see the store's `update`).
    #[serde(skip)]
    pub calls: u32,
}

impl Order {
    pub fn pending(id: OrderId, new: &NewOrder) -> Self {
        Self {
            order_id: id,
            status: OrderStatus::Pending,
            merchant_id: new.details.merchant_id.clone(),
            amount: new.details.amount,
            currency: new.details.currency,
            transaction_id: None,
            reason: None,
            created_at: now_in_micros(),
            maybe_charged: false,
            calls: 0,
        }
    }

    pub fn location(&self) -> String {
        format!("/orders/{}", self.order_id)
    }

    /// A new pending order of 1.00 USD, for unit tests.
    #[cfg(test)]
    pub(crate) fn example() -> Self {
        use common::domain::PaymentDetails;
        use serde_json::value::RawValue;
        let raw = |s: &str| Some(RawValue::from_string(s.to_owned()).unwrap());
        let details =
            PaymentDetails::parse(&raw(r#""m""#), &raw("1.00"), &raw(r#""USD""#)).unwrap();
        Self::pending(OrderId::new(), &NewOrder { details })
    }
}

/// Now, to the microsecond: what PostgreSQL keeps, so an order reads back
/// from any store exactly as it was written.
fn now_in_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

fn rfc3339<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
}
