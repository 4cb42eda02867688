//! `POST /orders` and `GET /orders/{id}`.

use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};
use common::body::{DEFAULT_LIMIT, parse_json, read_json_body};
use common::domain::{FieldError, IdempotencyKey, OrderId};

use crate::domain::NewOrder;
use crate::domain::new_order::NewOrderBody;
use crate::error::OrderError;
use crate::orders::place_order;
use crate::payment::PaymentCall;
use crate::store::OrderStore;

pub async fn create_order(
    req: HttpRequest,
    payload: web::Payload,
    store: web::Data<dyn OrderStore>,
    payments: web::Data<PaymentCall>,
) -> Result<HttpResponse, OrderError> {
    let key = idempotency_key(&req)?;
    let body = read_json_body(&req, payload, DEFAULT_LIMIT)
        .await
        .map_err(OrderError::Body)?;
    let new: NewOrder = parse_json::<NewOrderBody>(&body)
        .map_err(OrderError::Body)?
        .try_into()
        .map_err(OrderError::Validation)?;
    let order = place_order(store.get_ref(), &payments, new, key.as_ref()).await?;
    Ok(HttpResponse::Created()
        .insert_header((LOCATION, order.location()))
        .json(order))
}

pub async fn get_order(
    id: web::Path<String>,
    store: web::Data<dyn OrderStore>,
) -> Result<HttpResponse, OrderError> {
    let order_id = OrderId::parse(&id).map_err(|_| OrderError::NotFound(id.clone()))?;
    match store
        .get(order_id)
        .await
        .map_err(|e| OrderError::Store(e, None))?
    {
        Some(order) => Ok(HttpResponse::Ok().json(order)),
        None => Err(OrderError::NotFound(id.into_inner())),
    }
}

/// The optional `Idempotency-Key` header; present but invalid is a 400.
fn idempotency_key(req: &HttpRequest) -> Result<Option<IdempotencyKey>, OrderError> {
    let Some(value) = req.headers().get("Idempotency-Key") else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| {
        OrderError::BadHeader(FieldError::new(
            "Idempotency-Key",
            "must be printable ASCII",
        ))
    })?;
    IdempotencyKey::parse(text)
        .map(Some)
        .map_err(OrderError::BadHeader)
}
