//! HTTP tracing: the server span of each request, named `METHOD route`,
//! with the stable HTTP semantic-convention attributes we use and no more
//! (tracing-actix-web's default span formats ~16 fields and extracts the
//! caller's context twice); and the headers that carry the current trace on
//! an outgoing call.
//!
//! The caller's `traceparent` is read once, here, and decides the trace's
//! sampling before the span exists (see [`crate::sampling`]). Whether it is
//! trusted is the app's [`IncomingTrace`]: a public edge starts a trace of
//! its own and links the caller's, so a client cannot join someone else's
//! trace or choose whether ours is sampled.

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing::field::Empty;
use tracing_actix_web::RootSpanBuilder;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::sampling;

pub struct ServerSpan;

/// What a server does with a caller's trace context; read from the app's
/// data, continued when the app says nothing (an internal service).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IncomingTrace {
    /// Continue the caller's trace: the caller is one of ours (order-service
    /// calling payment-service) or a proxy that sets it.
    #[default]
    Continue,
    /// Start a new trace and link the caller's context to its root (the
    /// OpenTelemetry "public endpoint" pattern).
    Link,
}

/// Probes and scrapes, answered every few seconds for as long as a
/// service runs: traced, they would bury the orders in Jaeger.
const UNTRACED: &[&str] = &["/health", "/ready", "/metrics"];

impl RootSpanBuilder for ServerSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        if UNTRACED.contains(&request.path()) {
            return Span::none();
        }
        let Some(sampler) = sampling::sampler() else {
            // Nothing exported: the span only names the request in logs.
            return server_span(request);
        };
        // The propagator `traces::init` installs, without the global's
        // lock that every request of every worker would take.
        let caller = TraceContextPropagator::new().extract(&Headers(request.headers()));
        let remote = caller.span().span_context().clone();
        let policy = request
            .app_data::<IncomingTrace>()
            .copied()
            .unwrap_or_default();
        let continued = remote.is_valid() && policy == IncomingTrace::Continue;
        let (trace_id, state) = if continued {
            (remote.trace_id(), remote.trace_state().clone())
        } else {
            (sampling::new_trace_id(), TraceState::default())
        };
        let sampled = sampler.sampled(continued.then_some(&remote), trace_id);
        let span = sampling::decided_root(sampled, trace_id, state, || server_span(request));
        if sampled && continued {
            let _ = span.set_parent(caller);
        } else if sampled && remote.is_valid() {
            span.add_link(remote);
        }
        span
    }

    /// 5xx mark the span as an error; 4xx are the client's, and leave its
    /// status unset, as the HTTP conventions say for server spans.
    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let status = match outcome {
            Ok(response) => response.status(),
            Err(error) => error.as_response_error().status_code(),
        };
        span.record("http.response.status_code", i64::from(status.as_u16()));
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", status.as_str());
        }
    }
}

/// The request's method as the HTTP semantic conventions record it: one
/// of the known methods, else `_OTHER`, so a client inventing methods
/// cannot mint a metric series or span name per method.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    const KNOWN: [&str; 9] = [
        "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method.as_str())
        .unwrap_or("_OTHER")
}

fn server_span(request: &ServiceRequest) -> Span {
    let method = method_label(request.method());
    let route = request.match_pattern();
    let route = route.as_deref().unwrap_or("unmatched");
    tracing::info_span!(
        "HTTP request",
        otel.name = format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.route = route,
        url.path = request.path(),
        url.scheme = if request.app_config().secure() { "https" } else { "http" },
        server.port = i64::from(request.app_config().local_addr().port()),
        http.response.status_code = Empty,
        error.type = Empty,
    )
}

struct Headers<'a>(&'a HeaderMap);

/// A caller's `tracestate` past this is ignored (the W3C limit a vendor
/// must be able to propagate): it is copied into every span of the trace
/// and onto every outgoing call, where a large one can get the call
/// refused (431) or an export batch over a collector's limit.
const MAX_TRACESTATE: usize = 512;

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let value = self.0.get(key).and_then(|v| v.to_str().ok())?;
        (key != "tracestate" || value.len() <= MAX_TRACESTATE).then_some(value)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// `traceparent` (and `tracestate`, when the trace has one) for the
/// current span, to add to an outgoing request so the callee's spans join
/// this trace, sampled or not. Written as the W3C propagator writes them,
/// without building an OTel context or parsing header names per call.
pub fn outgoing_trace_headers() -> [Option<(HeaderName, HeaderValue)>; 2] {
    const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
    const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
    let ids = crate::current_span_context();
    if !ids.is_valid() {
        return [None, None];
    }
    let traceparent = crate::traceparent(&ids);
    let state = ids.trace_state().header();
    [
        HeaderValue::try_from(traceparent)
            .ok()
            .map(|v| (TRACEPARENT, v)),
        (!state.is_empty())
            .then(|| HeaderValue::try_from(state).ok())
            .flatten()
            .map(|v| (TRACESTATE, v)),
    ]
}

#[cfg(test)]
mod method_tests {
    use actix_web::http::Method;

    use super::method_label;

    #[test]
    fn unknown_methods_are_one_label() {
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(
            method_label(&Method::from_bytes(b"PROPFIND").unwrap()),
            "_OTHER"
        );
        assert_eq!(method_label(&Method::from_bytes(b"get").unwrap()), "_OTHER");
    }
}
