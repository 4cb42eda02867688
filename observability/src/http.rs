//! HTTP tracing: the server span of each request, named `METHOD route`,
//! with the stable HTTP semantic-convention attributes, continuing the
//! caller's trace from its `traceparent`; and the headers that carry the
//! current trace on an outgoing call.

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use opentelemetry::global;
use opentelemetry::propagation::Injector;
use tracing::Span;
use tracing_actix_web::{RootSpanBuilder, root_span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub struct ServerSpan;

impl RootSpanBuilder for ServerSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let path = request.path().to_owned();
        let port = request
            .connection_info()
            .host()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok());
        root_span!(
            level = tracing::Level::INFO,
            request,
            http.request.method = %request.method(),
            url.path = %path,
            url.scheme = %request.connection_info().scheme(),
            server.port = port,
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
        )
    }

    /// 5xx mark the span as an error; 4xx are the client's, and leave its
    /// status unset, as the HTTP conventions say for server spans.
    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let status = match outcome {
            Ok(response) => response.status(),
            Err(error) => error.as_response_error().status_code(),
        };
        span.record("http.response.status_code", status.as_u16());
        span.record("http.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", status.as_str());
        }
    }
}

/// `traceparent` (and `tracestate`) for the current span, to add to an
/// outgoing request so the callee's spans join this trace.
pub fn outgoing_trace_headers() -> Vec<(String, String)> {
    struct Headers(Vec<(String, String)>);
    impl Injector for Headers {
        fn set(&mut self, key: &str, value: String) {
            self.0.push((key.to_owned(), value));
        }
    }
    let context = Span::current().context();
    let mut headers = Headers(Vec::new());
    global::get_text_map_propagator(|propagator| propagator.inject_context(&context, &mut headers));
    headers.0
}
