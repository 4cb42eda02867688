//! `POST /orders` and `GET /orders/{id}`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use actors::idempotency::StoredResponse;
use common::body::json_body;
use common::domain::{FieldError, IdempotencyKey, OrderId};

use crate::domain::NewOrder;
use crate::domain::new_order::NewOrderBody;
use crate::error::OrderError;
use crate::orders::Orders;
use crate::store::OrderStore;

pub async fn create_order(
    req: HttpRequest,
    payload: web::Payload,
    orders: web::Data<Orders>,
) -> Result<HttpResponse, OrderError> {
    let key = idempotency_key(&req)?;
    let new: NewOrder = json_body::<NewOrderBody>(&req, payload)
        .await
        .map_err(OrderError::Body)?
        .try_into()
        .map_err(OrderError::Validation)?;
    let answer = orders.into_inner().create(new, key).await?;
    let mut response = to_http(&answer.response);
    if answer.replayed {
        response.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("idempotent-replayed"),
            actix_web::http::header::HeaderValue::from_static("true"),
        );
    }
    Ok(response)
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

fn to_http(stored: &StoredResponse) -> HttpResponse {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    for (name, value) in &stored.headers {
        response.insert_header((name.as_str(), value.as_str()));
    }
    response.body(stored.body.clone())
}

/// The optional `Idempotency-Key` header; present but invalid, or sent
/// twice (which would name the request?), is a 400.
fn idempotency_key(req: &HttpRequest) -> Result<Option<IdempotencyKey>, OrderError> {
    let mut values = req.headers().get_all("Idempotency-Key");
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OrderError::BadHeader(FieldError::new(
            "Idempotency-Key",
            "must be sent once",
        )));
    }
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
