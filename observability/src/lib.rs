//! Telemetry both services share: traces to an OTLP collector, JSON log
//! lines that carry the trace, and Prometheus metrics — set up the same way
//! in both binaries so a trace crosses the service boundary intact.
//!
//! # Layout
//! - [`traces`]: the tracer provider (batch OTLP/gRPC exporter on its own
//!   thread, configured by the standard `OTEL_*` variables), the W3C
//!   propagator, and the guard that flushes on shutdown.
//! - [`logs`]: one JSON object per line with `trace_id` and `span_id`.
//! - [`sampling`]: head sampling decided at the root, so the spans of an
//!   unsampled trace never reach the OTel layer.
//! - [`http`]: the server span of each request (HTTP semantic conventions)
//!   and the `traceparent` headers for an outgoing call.
//! - [`metrics`]: a Prometheus registry per application, the request
//!   metrics middleware and the text exposition.
//! - [`metric_names`]: every metric name, in one place.
#![forbid(unsafe_code)]

pub mod http;
pub mod logs;
pub mod metric_names;
pub mod metrics;
pub mod sampling;
pub mod traces;

pub use traces::{Telemetry, init, init_for_tests};

/// The trace and span ids of the current span: the exported span's, or,
/// in an unsampled trace, the ids its root keeps ([`sampling::Unsampled`]).
/// Invalid outside any trace, or when nothing is exported.
pub fn current_span_context() -> opentelemetry::trace::SpanContext {
    use opentelemetry::trace::{SpanContext, TraceContextExt};
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let span = tracing::Span::current();
    let Some(id) = span.id() else {
        return SpanContext::empty_context();
    };
    // An unsampled root (its children are not built) answers from its own
    // extension, before the OTel layer is asked about a span it never saw.
    if let Some(ids) = sampling::own_unsampled_ids(&id) {
        return ids;
    }
    let ids = span.context().span().span_context().clone();
    if ids.is_valid() {
        return ids;
    }
    sampling::unsampled_ids(&id).unwrap_or_else(SpanContext::empty_context)
}

/// The trace id of the current span, for problem bodies and logs.
pub fn current_trace_id() -> Option<String> {
    let ids = current_span_context();
    ids.is_valid().then(|| ids.trace_id().to_string())
}

/// `ids` as a W3C `traceparent` (version 00; of the flags, only the
/// sampled bit, which is all the version defines).
pub(crate) fn traceparent(ids: &opentelemetry::trace::SpanContext) -> String {
    let flags = ids.trace_flags() & opentelemetry::trace::TraceFlags::SAMPLED;
    format!("00-{}-{}-{flags:02x}", ids.trace_id(), ids.span_id())
}

/// A reference to a span of another trace, for an OpenTelemetry span link:
/// work done later on behalf of a request (a reconciliation) points back to
/// the request's trace instead of joining it.
#[derive(Debug, Clone)]
pub struct TraceLink(opentelemetry::trace::SpanContext);

impl TraceLink {
    /// The current span, to be linked to later.
    pub fn current() -> Self {
        Self(current_span_context())
    }

    /// As a W3C `traceparent`, to be kept beside what it created (none when
    /// nothing is traced).
    pub fn to_traceparent(&self) -> Option<String> {
        self.0.is_valid().then(|| traceparent(&self.0))
    }

    /// From a `traceparent` kept by [`Self::to_traceparent`]; anything
    /// malformed links to nothing.
    pub fn from_traceparent(traceparent: &str) -> Self {
        use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
        let parts: Vec<&str> = traceparent.split('-').collect();
        let context = match parts.as_slice() {
            ["00", trace, span, flags] => {
                match (
                    TraceId::from_hex(trace),
                    SpanId::from_hex(span),
                    u8::from_str_radix(flags, 16),
                ) {
                    (Ok(trace), Ok(span), Ok(flags)) => SpanContext::new(
                        trace,
                        span,
                        TraceFlags::new(flags),
                        true,
                        TraceState::default(),
                    ),
                    _ => SpanContext::empty_context(),
                }
            }
            _ => SpanContext::empty_context(),
        };
        Self(context)
    }

    /// Adds the link to `span` (before it is entered).
    pub fn attach_to(&self, span: &tracing::Span) {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        if self.0.is_valid() {
            span.add_link(self.0.clone());
        }
    }
}
