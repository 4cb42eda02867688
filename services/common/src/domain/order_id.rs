//! An order's identifier. Random (UUID v4), so ids leak nothing about volume
//! and can be minted on any instance. It is also the payment
//! `Idempotency-Key`, which is what makes a retried charge safe.

use std::fmt;

use serde::Serialize;
use uuid::Uuid;

use super::{FieldError, deserialize_via_parse};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct OrderId(Uuid);

impl OrderId {
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    pub fn parse(id: &str) -> Result<Self, FieldError> {
        Uuid::try_parse(id)
            .map(Self)
            .map_err(|_| FieldError::new("order_id", "must be a UUID"))
    }
}

impl Default for OrderId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

deserialize_via_parse!(OrderId, String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        let id = OrderId::new();
        assert_eq!(OrderId::parse(&id.to_string()).unwrap(), id);
        assert!(OrderId::parse("not-a-uuid").is_err());
    }
}
