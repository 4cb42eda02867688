//! The answer to `POST /orders` as the flow hands it over and as a key
//! keeps it: bytes, status and headers, so that a replay — from this
//! process or any replica, now or a day later — is the answer first sent.
//! Problems are rendered by [`OrderError::stored_response`] (the one
//! mapping of errors to HTTP); a created order here.

use actors::idempotency::StoredResponse;
use common::domain::OrderId;

use crate::domain::Order;
use crate::error::OrderError;

/// The answer to `POST /orders`, as sent and as replayed.
pub struct Answer {
    pub response: StoredResponse,
    pub replayed: bool,
}

impl Answer {
    pub(super) fn fresh(order: Order) -> Self {
        Self {
            response: created(&order),
            replayed: false,
        }
    }
}

/// 201, with the order and where to read it again.
pub(super) fn created(order: &Order) -> StoredResponse {
    StoredResponse {
        status: 201,
        headers: vec![
            ("location".to_owned(), order.location()),
            ("content-type".to_owned(), "application/json".to_owned()),
        ],
        body: serde_json::to_vec(order).unwrap_or_default(),
    }
}

/// What a spent key answers from now on.
pub(super) fn spent(order_id: OrderId) -> StoredResponse {
    OrderError::KeySpent { order_id }.stored_response()
}
