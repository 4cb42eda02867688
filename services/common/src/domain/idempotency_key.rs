//! A client's `Idempotency-Key`: 1–255 printable ASCII characters. Anything
//! else is refused (400) rather than silently trimmed, because two keys that
//! differ only in what we would trim must not name the same operation.

use std::fmt;

use serde::Serialize;

use super::{FieldError, deserialize_via_parse};

pub const MAX_LEN: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(key: &str) -> Result<Self, FieldError> {
        if key.is_empty() || key.len() > MAX_LEN {
            return Err(FieldError::new(
                "Idempotency-Key",
                format!("must be 1 to {MAX_LEN} characters long"),
            ));
        }
        if !key.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(FieldError::new(
                "Idempotency-Key",
                "must be printable ASCII",
            ));
        }
        Ok(Self(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

deserialize_via_parse!(IdempotencyKey, String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_length_and_alphabet() {
        assert!(IdempotencyKey::parse("order-abc-123").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("tab\there").is_err());
        assert!(IdempotencyKey::parse("ключ").is_err());
    }
}
