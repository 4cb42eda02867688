//! `GET/PUT /admin/breaker`: the breaker's state, and the operator's
//! override (`auto` resets it to a fresh closed breaker);
//! `GET /admin/breaker/events`: its transitions as they happen
//! (server-sent events), for `make watch`.

use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use actors::circuit_breaker::{BreakerEvent, GetStatus, Mode, SetMode, Status, Watch, WatchError};
use common::body::json_body;
use common::openapi::{AdminOff, BodyTimeout, TooLarge, Unauthorized};
use common::problem::Problem;
use serde::Deserialize;

use crate::error::OpsError;
use crate::reliability::Reliability;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModeBody {
    mode: Mode,
}

/// The breaker's state and counts.
#[utoipa::path(
    get,
    path = "/admin/breaker",
    tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The breaker", body = Status),
        (status = 401, response = Unauthorized),
        (status = 404, response = AdminOff),
        (status = 503, description = "The breaker actor is restarting", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds"))),
    ),
)]
pub async fn get_breaker(reliability: web::Data<Reliability>) -> Result<HttpResponse, OpsError> {
    match reliability.pipeline.breaker.send(GetStatus).await {
        Ok(Ok(status)) => Ok(HttpResponse::Ok().json(status)),
        _ => Err(OpsError::BreakerRestarting),
    }
}

/// The operator's override: `forced_open`, `forced_closed`, or `auto`
/// (a fresh closed breaker).
#[utoipa::path(
    put,
    path = "/admin/breaker",
    tag = "admin",
    security(("admin_token" = [])),
    request_body(content = ModeBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The breaker now", body = Status),
        (status = 400, description = "Malformed JSON, wrong content type, unknown field or mode", body = Problem, content_type = "application/problem+json"),
        (status = 401, response = Unauthorized),
        (status = 404, response = AdminOff),
        (status = 408, response = BodyTimeout),
        (status = 413, response = TooLarge),
        (status = 503, description = "The breaker actor is restarting", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds"))),
    ),
)]
pub async fn put_breaker(
    req: HttpRequest,
    payload: web::Payload,
    reliability: web::Data<Reliability>,
) -> Result<HttpResponse, OpsError> {
    let body = json_body::<ModeBody>(&req, payload)
        .await
        .map_err(OpsError::Body)?;
    let set = SetMode {
        mode: body.mode,
        span: tracing::Span::current(),
    };
    match reliability.pipeline.breaker.send(set).await {
        Ok(Ok(status)) => {
            tracing::info!(mode = ?body.mode, "circuit breaker mode set");
            Ok(HttpResponse::Ok().json(status))
        }
        _ => Err(OpsError::BreakerRestarting),
    }
}

/// A comment line this often keeps proxies from closing a quiet stream
/// (nginx's read timeout here is 10 s), and finds out, by the second write
/// after it, a reader that went away.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// The breaker's state, then one event per transition, as `text/event-stream`:
/// `event: state` / `event: transition`, `data:` the event as JSON (a
/// `state` again after a change that is not a transition: an operator's
/// mode that leaves the state, an actor restart). The stream ends when the
/// reader falls too far behind (it may reconnect: the first event is always
/// the state) and when the service shuts down.
#[utoipa::path(
    get,
    path = "/admin/breaker/events",
    tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "`event: state` first, then one `event: transition` per change", body = StreamedEvent, content_type = "text/event-stream"),
        (status = 401, response = Unauthorized),
        (status = 404, response = AdminOff),
        (status = 503, description = "Too many watchers, shutting down, or the actor is restarting", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds"))),
    ),
)]
pub async fn breaker_events(reliability: web::Data<Reliability>) -> Result<HttpResponse, OpsError> {
    let events = match reliability.pipeline.breaker.send(Watch).await {
        Ok(Ok(events)) => events,
        Ok(Err(WatchError::TooManyWatchers)) => return Err(OpsError::TooManyWatchers),
        Ok(Err(WatchError::ShuttingDown)) => return Err(OpsError::ShuttingDown),
        _ => return Err(OpsError::BreakerRestarting),
    };
    let keep_alive =
        actix_rt::time::interval_at(actix_rt::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    let body = futures_util::stream::unfold(
        (events, keep_alive),
        |(mut events, mut keep_alive)| async move {
            let chunk = tokio::select! {
                event = events.recv() => sse(&event?),
                _ = keep_alive.tick() => Bytes::from_static(b": keep-alive\n\n"),
            };
            Some((Ok::<_, actix_web::Error>(chunk), (events, keep_alive)))
        },
    );
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        // nginx (make run-replicas) would otherwise hold the events back.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

/// One server-sent event of `GET /admin/breaker/events`, as a reader parses
/// it (what [`sse`] writes).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct StreamedEvent {
    /// `state` or `transition`.
    #[schema(pattern = "^(state|transition)$")]
    event: String,
    /// The event as JSON: `kind`, `at_ms`, then the status or the transition.
    data: String,
}

fn sse(event: &BreakerEvent) -> Bytes {
    let data = serde_json::to_string(event).unwrap_or_else(|_| "{}".to_owned());
    Bytes::from(format!("event: {}\ndata: {data}\n\n", event.name()))
}
