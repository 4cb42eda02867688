//! The request headers both sides of the payment call read the same way.

use actix_web::http::header::HeaderMap;

use crate::domain::{FieldError, IdempotencyKey};

/// The client's key for one operation, on both services.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// The caller's remaining budget in milliseconds: order-service sends it
/// with each attempt, and payment-service answers 504 at once, charging
/// nothing, when its work cannot finish within it.
pub const REQUEST_TIMEOUT: &str = "X-Request-Timeout-Ms";

/// `Idempotency-Key`, if sent: once, printable ASCII, within the key's
/// bounds (a second one would name the request twice).
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, FieldError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(FieldError::new(IDEMPOTENCY_KEY, "must be sent once"));
    }
    let text = value
        .to_str()
        .map_err(|_| FieldError::new(IDEMPOTENCY_KEY, "must be printable ASCII"))?;
    IdempotencyKey::parse(text).map(Some)
}
