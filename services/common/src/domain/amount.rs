//! A payment amount: exact decimal, positive, at most two decimal places,
//! at most 1,000,000. Read from the JSON number's own digits, so `0.1` is
//! one tenth and not the nearest binary fraction.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use super::{FieldError, deserialize_via_parse, json_kind};

const FIELD: &str = "amount";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Amount(Decimal);

impl Amount {
    /// The largest amount an order may carry.
    pub const MAX: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);
    /// Currency minor units: no currency we accept needs more.
    pub const MAX_DECIMAL_PLACES: u32 = 2;

    /// Parses a JSON value that must be a number (a string such as `"99.99"`
    /// is refused: the contract's `amount` is a JSON number).
    pub fn parse(raw: &RawValue) -> Result<Self, FieldError> {
        let kind = json_kind(raw);
        if kind != "a number" {
            return Err(FieldError::new(
                FIELD,
                format!("must be a JSON number, got {kind}"),
            ));
        }
        let text = raw.get().trim();
        let value = if text.contains(['e', 'E']) {
            Decimal::from_scientific(text)
        } else {
            Decimal::from_str_exact(text)
        }
        .map_err(|_| FieldError::new(FIELD, format!("{text} is out of range")))?;
        Self::from_decimal(value)
    }

    pub fn from_decimal(value: Decimal) -> Result<Self, FieldError> {
        let value = value.normalize();
        if value <= Decimal::ZERO {
            return Err(FieldError::new(FIELD, "must be greater than 0"));
        }
        if value.scale() > Self::MAX_DECIMAL_PLACES {
            return Err(FieldError::new(
                FIELD,
                format!(
                    "must have at most {} decimal places",
                    Self::MAX_DECIMAL_PLACES
                ),
            ));
        }
        if value > Self::MAX {
            return Err(FieldError::new(
                FIELD,
                format!("must be at most {}", Self::MAX),
            ));
        }
        Ok(Self(value))
    }

    pub fn value(&self) -> Decimal {
        self.0
    }

    /// Decimal places actually used (`10.50` uses one).
    pub fn decimal_places(&self) -> u32 {
        self.0.scale()
    }
}

impl fmt::Display for Amount {
    /// Always two places, as money is written: `99.90`, `100.00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut value = self.0;
        value.rescale(Self::MAX_DECIMAL_PLACES);
        write!(f, "{value}")
    }
}

impl FromStr for Amount {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let raw = RawValue::from_string(s.to_owned())
            .map_err(|_| FieldError::new(FIELD, "must be a JSON number"))?;
        Self::parse(&raw)
    }
}

impl Serialize for Amount {
    /// A JSON number written from the decimal digits, never through `f64`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RawValue::from_string(self.to_string())
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

deserialize_via_parse!(Amount, Box<RawValue>);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Amount, FieldError> {
        text.parse()
    }

    #[test]
    fn accepts_exact_two_place_amounts() {
        assert_eq!(parse("99.99").unwrap().to_string(), "99.99");
        assert_eq!(parse("0.01").unwrap().to_string(), "0.01");
        assert_eq!(parse("1000000").unwrap().to_string(), "1000000.00");
        assert_eq!(parse("10.50").unwrap().to_string(), "10.50");
        assert_eq!(parse("1e2").unwrap().to_string(), "100.00");
        assert_eq!(parse("99.990").unwrap().decimal_places(), 2);
    }

    #[test]
    fn sums_exactly_where_f64_does_not() {
        let a = parse("0.1").unwrap().value() + parse("0.2").unwrap().value();
        assert_eq!(a, parse("0.3").unwrap().value());
    }

    #[test]
    fn refuses_zero_negative_too_precise_and_too_large() {
        for (text, why) in [
            ("0", "greater than 0"),
            ("-5", "greater than 0"),
            ("-0.00", "greater than 0"),
            ("1.999", "at most 2 decimal places"),
            ("0.001", "at most 2 decimal places"),
            ("1000000.01", "at most 1000000"),
            ("1e400", "out of range"),
            ("123456789012345678901234567890123", "out of range"),
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(err.field, "amount");
            assert!(err.message.contains(why), "{text}: {}", err.message);
        }
    }

    #[test]
    fn refuses_non_numbers() {
        for (text, kind) in [
            (r#""99.99""#, "a string"),
            ("true", "a boolean"),
            ("null", "null"),
            ("[1]", "an array"),
            (r#"{"v":1}"#, "an object"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.message.contains(kind), "{text}: {}", err.message);
        }
    }

    #[test]
    fn serializes_as_a_json_number_with_two_places() {
        let json = serde_json::to_string(&parse("99.9").unwrap()).unwrap();
        assert_eq!(json, "99.90");
        let back: Amount = serde_json::from_str(&json).unwrap();
        assert_eq!(back, parse("99.9").unwrap());
    }
}
