//! `POST /orders` and `GET /orders/{id}`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use actors::idempotency::StoredResponse;
use common::body::json_body;
use common::domain::{IdempotencyKey, OrderId};
use common::headers::idempotency_key;
use common::openapi::{BodyTimeout, TooLarge};
use common::problem::Problem;

use crate::domain::new_order::NewOrderBody;
use crate::domain::{NewOrder, Order};
use crate::error::OrderError;
use crate::orders::Orders;
use crate::store::OrderStore;

/// Takes an order and charges it through the reliability pipeline.
#[utoipa::path(
    post,
    path = "/orders",
    tag = "orders",
    params(("Idempotency-Key" = Option<IdempotencyKey>, Header, nullable = false, description = "One order per key: a repeat replays the first answer")),
    request_body(content = NewOrderBody, content_type = "application/json"),
    security((), ("client_key" = [])),
    responses(
        (status = 201, description = "Created and charged (or replayed, with Idempotent-Replayed)", body = Order,
            headers(
                ("Location" = String, description = "/orders/{order_id}"),
                ("Idempotent-Replayed" = String, description = "true when this answer is the replay of an earlier request with the same key"),
                ("RateLimit-Policy" = String, description = "While limits are on: `\"orders\";q=<burst>;w=<seconds to refill>`"),
                ("RateLimit" = String, description = "While limits are on: `\"orders\";r=<requests left now>;t=<seconds until full>`"),
            )),
        (status = 400, description = "Malformed JSON, wrong content type, unknown field, bad or repeated Idempotency-Key. `charge`: `none`; `unknown` when a readable Idempotency-Key came with a bad body (refused before the key was read: retry with the same key)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "With CLIENT_KEYS set, no client key or an unknown one (`WWW-Authenticate: Bearer`). This request created nothing. `charge`: `none`; `unknown` with an Idempotency-Key, whose earlier requests were not looked up: retry with the same key", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "Declined by payment-service (the answer is replayed for its key). `charge`: `none`", body = Problem, content_type = "application/problem+json"),
        (status = 408, response = BodyTimeout),
        (status = 409, description = "A request with this Idempotency-Key is in flight (`Retry-After`), or the order is pending from an earlier attempt and none was made now. `charge`: `unknown`; `order_id` and `Location` name the order: read it, or retry with the same key", body = Problem, content_type = "application/problem+json",
            headers(
                ("Retry-After" = u64, description = "Seconds (key in flight)"),
                ("Location" = String, description = "/orders/{order_id}"),
            )),
        (status = 413, response = TooLarge),
        (status = 422, description = "A field fails validation, or the key was used with another body. `charge`: `none`; `unknown` for a field that fails validation under an Idempotency-Key (refused before the key was read)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The client (its key, or its address with RATE_LIMIT_PER_IP) is over its limit. This request created nothing and did not use its Idempotency-Key. `charge`: `none`; `unknown` with an Idempotency-Key, whose earlier requests were not looked up: retry with the same key after Retry-After", body = Problem, content_type = "application/problem+json",
            headers(
                ("Retry-After" = u64, description = "Seconds until one more request is let in"),
                ("RateLimit-Policy" = String, description = "`\"orders\";q=<burst>;w=<seconds to refill>`"),
                ("RateLimit" = String, description = "`\"orders\";r=0;t=<seconds until one more>`"),
            )),
        (status = 500, description = "The order store failed while the order was placed, and it may be charged. `charge`: `unknown`; `order_id` and `Location` name the order, which ends `completed` or `failed` (not found until recorded, when its first write may have been lost): read it, or retry with the same key; never send a new request for it", body = Problem, content_type = "application/problem+json",
            headers(("Location" = String, description = "/orders/{order_id}"))),
        (status = 502, description = "Payment failed after every retry. `charge` tells: `unknown` (an attempt may have charged the order, which stays pending; `Location` names it) or `none` (no attempt reached payment-service, or its key was voided)", body = Problem, content_type = "application/problem+json",
            headers(("Location" = String, description = "/orders/{order_id}, when `charge` is `unknown`"))),
        (status = 503, description = "Circuit open, bulkhead full, store full or unavailable, shutting down: `charge` `none`, nothing was charged for this request, and nothing ever will be. With an Idempotency-Key that cannot be read now (`idempotency-key-unknown`): `charge` `unknown`, the key may name a charged order; retry with the same key", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds"))),
        (status = 504, description = "The payment budget ran out. `charge`: `unknown`; the order stays pending until payment-service tells", body = Problem, content_type = "application/problem+json",
            headers(("Location" = String, description = "/orders/{order_id}"))),
    ),
)]
pub async fn create_order(
    req: HttpRequest,
    payload: web::Payload,
    orders: web::Data<Orders>,
) -> Result<HttpResponse, OrderError> {
    let key = idempotency_key(req.headers()).map_err(OrderError::BadHeader)?;
    // Refused before the key is read: "none" only without a key.
    let keyed = key.is_some();
    let new: NewOrder = json_body::<NewOrderBody>(&req, payload)
        .await
        .map_err(|e| OrderError::Body(e).before_key(keyed))?
        .try_into()
        .map_err(|e| OrderError::Validation(e).before_key(keyed))?;
    let answer = orders.into_inner().create(new, key).await?;
    let replayed = answer.replayed;
    let mut response = to_http(answer.response);
    if replayed {
        response.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("idempotent-replayed"),
            actix_web::http::header::HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

/// An order as it stands now.
#[utoipa::path(
    get,
    path = "/orders/{id}",
    tag = "orders",
    params(("id" = OrderId, Path)),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 404, description = "No such order (or forgotten: see ORDERS_MAX)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The order store is unavailable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds"))),
    ),
)]
pub async fn get_order(
    id: web::Path<String>,
    store: web::Data<dyn OrderStore>,
) -> Result<HttpResponse, OrderError> {
    let order_id = OrderId::parse(&id).map_err(|_| OrderError::NotFound(id.clone()))?;
    match store.get(order_id).await.map_err(OrderError::Store)? {
        Some(order) => Ok(HttpResponse::Ok().json(order)),
        None => Err(OrderError::NotFound(id.into_inner())),
    }
}

fn to_http(stored: StoredResponse) -> HttpResponse {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    for (name, value) in &stored.headers {
        response.insert_header((name.as_str(), value.as_str()));
    }
    response.body(stored.body)
}
