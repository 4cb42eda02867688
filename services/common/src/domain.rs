//! Parse, don't validate: each type here has a private field and a `parse`
//! that is the only way in, so a handler holding one never re-checks it.
//!
//! JSON fields are taken as raw JSON text ([`serde_json::value::RawValue`])
//! before parsing, for two reasons: an amount must be read from its exact
//! digits (never through `f64`), and a field of the wrong JSON type is a
//! validation failure of that field (422) rather than a malformed body (400).

mod amount;
pub(crate) mod currency;
pub(crate) mod idempotency_key;
pub(crate) mod merchant_id;
mod order_id;

pub use amount::Amount;
pub use currency::Currency;
pub use idempotency_key::IdempotencyKey;
pub use merchant_id::MerchantId;
pub use order_id::OrderId;

use serde::Serialize;
use serde_json::value::RawValue;

/// Why one field of a request was refused; listed in the problem body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A required field: absent and `null` are both "missing".
pub fn required<'a>(
    raw: &'a Option<Box<RawValue>>,
    field: &'static str,
) -> Result<&'a RawValue, FieldError> {
    raw.as_deref()
        .ok_or_else(|| FieldError::new(field, "is required"))
}

/// The JSON string held by `raw`, or a field error naming the JSON type found.
pub fn json_string(raw: &RawValue, field: &'static str) -> Result<String, FieldError> {
    serde_json::from_str::<String>(raw.get())
        .map_err(|_| FieldError::new(field, format!("must be a string, got {}", json_kind(raw))))
}

/// The JSON type of a raw value, for error messages.
pub(crate) fn json_kind(raw: &RawValue) -> &'static str {
    match raw.get().trim_start().as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// Implements `Deserialize` through `parse`, for records read back from our
/// own storage (the payment ledger): input from clients goes through the
/// field-by-field path instead, which reports every field's error.
macro_rules! deserialize_via_parse {
    ($ty:ty, $inner:ty) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = <$inner as serde::Deserialize>::deserialize(d)?;
                <$ty>::parse(&raw).map_err(|e| serde::de::Error::custom(e.message))
            }
        }
    };
}
pub(crate) use deserialize_via_parse;

/// The money part of both an order and a charge: who is paid, how much, in
/// what. Parsed together because the amount's precision depends on the
/// currency (JPY has no minor units), and every invalid field is reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentDetails {
    pub merchant_id: MerchantId,
    pub amount: Amount,
    pub currency: Currency,
}

impl PaymentDetails {
    pub fn parse(
        merchant_id: &Option<Box<RawValue>>,
        amount: &Option<Box<RawValue>>,
        currency: &Option<Box<RawValue>>,
    ) -> Result<Self, Vec<FieldError>> {
        let merchant_id = required(merchant_id, "merchant_id")
            .and_then(|raw| json_string(raw, "merchant_id"))
            .and_then(|s| MerchantId::parse(&s));
        let amount = required(amount, "amount").and_then(Amount::parse);
        let currency = required(currency, "currency")
            .and_then(|raw| json_string(raw, "currency"))
            .and_then(|s| Currency::parse(&s));
        match (merchant_id, amount, currency) {
            (Ok(merchant_id), Ok(amount), Ok(currency)) => {
                if amount.decimal_places() > currency.minor_units() {
                    return Err(vec![FieldError::new(
                        "amount",
                        format!(
                            "{currency} has {} decimal places, {amount} has more",
                            currency.minor_units()
                        ),
                    )]);
                }
                Ok(Self {
                    merchant_id,
                    amount,
                    currency,
                })
            }
            (m, a, c) => Err([m.err(), a.err(), c.err()].into_iter().flatten().collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Option<Box<RawValue>> {
        Some(RawValue::from_string(text.to_owned()).unwrap())
    }

    #[test]
    fn parses_valid_details() {
        let d = PaymentDetails::parse(&raw(r#""m_1""#), &raw("99.99"), &raw(r#""USD""#)).unwrap();
        assert_eq!(d.amount.to_string(), "99.99");
        assert_eq!(d.currency.code(), "USD");
    }

    #[test]
    fn reports_every_invalid_field() {
        let errors = PaymentDetails::parse(&None, &raw(r#""1""#), &raw("840")).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["merchant_id", "amount", "currency"]);
        assert!(errors[0].message.contains("required"));
        assert!(errors[2].message.contains("must be a string"));
    }

    #[test]
    fn amount_precision_follows_the_currency() {
        let errors =
            PaymentDetails::parse(&raw(r#""m""#), &raw("1.5"), &raw(r#""JPY""#)).unwrap_err();
        assert_eq!(errors[0].field, "amount");
        assert!(PaymentDetails::parse(&raw(r#""m""#), &raw("150"), &raw(r#""JPY""#)).is_ok());
    }
}
