//! A merchant identifier: 1–64 characters of `[A-Za-z0-9_-]`, safe to put
//! in logs, span attributes and URLs without escaping.

use std::fmt;

use serde::Serialize;

use super::{FieldError, deserialize_via_parse};

const FIELD: &str = "merchant_id";
pub(crate) const MAX_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct MerchantId(String);

impl MerchantId {
    pub fn parse(id: &str) -> Result<Self, FieldError> {
        if id.is_empty() || id.len() > MAX_LEN {
            return Err(FieldError::new(
                FIELD,
                format!("must be 1 to {MAX_LEN} characters long"),
            ));
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(FieldError::new(
                FIELD,
                "may contain only letters, digits, '_' and '-'",
            ));
        }
        Ok(Self(id.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MerchantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

deserialize_via_parse!(MerchantId, String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet_up_to_64() {
        assert!(MerchantId::parse("merchant_123").is_ok());
        assert!(MerchantId::parse("a-B_9").is_ok());
        assert!(MerchantId::parse(&"m".repeat(64)).is_ok());
    }

    #[test]
    fn refuses_empty_long_and_other_characters() {
        for id in [
            "",
            &"m".repeat(65),
            "merchant 123",
            "mérchant",
            "a/b",
            "a\nb",
        ] {
            assert!(MerchantId::parse(id).is_err(), "{id:?}");
        }
    }
}
