//! `POST /orders` body, parsed. Fields are read as raw JSON first so that a
//! field of the wrong type is a 422 naming the field, while a body that is
//! not JSON, or has an unknown field, is a 400.

use common::domain::{Amount, Currency, FieldError, MerchantId, PaymentDetails};
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub details: PaymentDetails,
}

/// The body as read; its schema is the parsed types'.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrderBody {
    #[schema(value_type = MerchantId, required = true)]
    merchant_id: Option<Box<RawValue>>,
    #[schema(value_type = Amount, required = true)]
    amount: Option<Box<RawValue>>,
    #[schema(value_type = Currency, required = true)]
    currency: Option<Box<RawValue>>,
}

impl TryFrom<NewOrderBody> for NewOrder {
    type Error = Vec<FieldError>;

    fn try_from(body: NewOrderBody) -> Result<Self, Self::Error> {
        PaymentDetails::parse(&body.merchant_id, &body.amount, &body.currency)
            .map(|details| Self { details })
    }
}

impl NewOrder {
    /// What makes two bodies "the same request" for an idempotency key:
    /// the parsed values, so `99.9` and `99.90` are the same order.
    pub fn fingerprint(&self) -> String {
        let d = &self.details;
        format!("{}|{}|{}", d.merchant_id, d.amount, d.currency)
    }
}
