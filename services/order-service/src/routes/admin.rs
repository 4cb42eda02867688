//! `GET/PUT /admin/breaker`: the breaker's state, and the operator's
//! override (`auto` resets it to a fresh closed breaker).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use actors::circuit_breaker::{GetStatus, Mode, SetMode};
use common::body::json_body;
use common::problem::Problem;
use serde::Deserialize;

use crate::reliability::Reliability;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeBody {
    mode: Mode,
}

fn unavailable() -> HttpResponse {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "Service unavailable",
        "the circuit breaker actor is restarting; retry shortly",
    )
    .with_retry_after(1)
    .to_response()
}

pub async fn get_breaker(reliability: web::Data<Reliability>) -> HttpResponse {
    match reliability.breaker.send(GetStatus).await {
        Ok(Ok(status)) => HttpResponse::Ok().json(status),
        _ => unavailable(),
    }
}

pub async fn put_breaker(
    req: HttpRequest,
    payload: web::Payload,
    reliability: web::Data<Reliability>,
) -> HttpResponse {
    let body = match json_body::<ModeBody>(&req, payload).await {
        Ok(body) => body,
        Err(problem) => return problem.to_response(),
    };
    let set = SetMode {
        mode: body.mode,
        span: tracing::Span::current(),
    };
    match reliability.breaker.send(set).await {
        Ok(Ok(status)) => {
            tracing::info!(mode = ?body.mode, "circuit breaker mode set");
            HttpResponse::Ok().json(status)
        }
        _ => unavailable(),
    }
}
