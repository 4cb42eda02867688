//! An OTLP trace receiver, over gRPC and over HTTP (`http/protobuf`), as a
//! collector listens on 4317 and 4318: the real protobuf over real sockets,
//! so the services export exactly as they would to a collector.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// A received span, flattened.
#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub name: String,
    pub kind: i32,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    /// The W3C `tracestate` the span was recorded under.
    pub trace_state: String,
    pub attributes: Vec<(String, String)>,
    pub events: Vec<(String, Vec<(String, String)>)>,
    /// (trace id, span id) of each span link.
    pub links: Vec<(String, String)>,
    pub status_code: i32,
}

impl Span {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn event(&self, name: &str) -> Option<&[(String, String)]> {
        self.events
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, attrs)| attrs.as_slice())
    }
}

pub const SERVER: i32 = 2;
pub const CLIENT: i32 = 3;
pub const STATUS_ERROR: i32 = 2;

#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Span>>>,
    received: Arc<AtomicU64>,
    /// Of them, spans that came over OTLP/HTTP.
    over_http: Arc<AtomicU64>,
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn pairs(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.take(request.into_inner());
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

/// `POST /v1/traces` with a protobuf body, as OTLP/HTTP sends it.
async fn http_export(
    receiver: actix_web::web::Data<Receiver>,
    body: actix_web::web::Bytes,
) -> actix_web::HttpResponse {
    use prost::Message;
    match ExportTraceServiceRequest::decode(body) {
        Ok(request) => {
            let spans = receiver.take(request);
            receiver.over_http.fetch_add(spans, Ordering::Relaxed);
            actix_web::HttpResponse::Ok()
                .content_type("application/x-protobuf")
                .body(ExportTraceServiceResponse::default().encode_to_vec())
        }
        Err(e) => actix_web::HttpResponse::BadRequest().body(e.to_string()),
    }
}

impl Receiver {
    /// Keeps the request's spans; answers how many it held.
    fn take(&self, request: ExportTraceServiceRequest) -> u64 {
        let mut received = Vec::new();
        for resource_spans in request.resource_spans {
            let resource = resource_spans
                .resource
                .map(|r| pairs(&r.attributes))
                .unwrap_or_default();
            let service = resource
                .iter()
                .find(|(k, _)| k == "service.name")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    received.push(Span {
                        service: service.clone(),
                        name: span.name,
                        kind: span.kind,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        trace_state: span.trace_state.clone(),
                        attributes: pairs(&span.attributes),
                        events: span
                            .events
                            .iter()
                            .map(|e| (e.name.clone(), pairs(&e.attributes)))
                            .collect(),
                        links: span
                            .links
                            .iter()
                            .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                            .collect(),
                        status_code: span.status.map(|s| s.code).unwrap_or(0),
                    });
                }
            }
        }
        let count = received.len() as u64;
        self.received.fetch_add(count, Ordering::Relaxed);
        self.spans.lock().unwrap().extend(received);
        count
    }
}

pub struct Collector {
    over_http: Arc<AtomicU64>,
    /// OTLP/gRPC.
    pub endpoint: String,
    /// OTLP/HTTP (the exporter appends `/v1/traces`).
    pub http_endpoint: String,
    spans: Arc<Mutex<Vec<Span>>>,
    received: Arc<AtomicU64>,
}

impl Collector {
    /// Starts a receiver that keeps every span, on its own thread and runtime.
    pub fn start() -> Self {
        let receiver = Receiver::default();

        let spans = receiver.spans.clone();
        let received = receiver.received.clone();
        let over_http = receiver.over_http.clone();
        let http_endpoint = Self::serve_http(receiver.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let incoming = TcpIncoming::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
                tx.send(incoming.local_addr().unwrap()).unwrap();
                tonic::transport::Server::builder()
                    .serve_with_incoming(TraceServiceServer::new(receiver), incoming)
                    .await
                    .unwrap();
            });
        });
        let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Self {
            endpoint: format!("http://{addr}"),
            http_endpoint,
            spans,
            received,
            over_http,
        }
    }

    /// Spans received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Of them, spans received over OTLP/HTTP.
    pub fn received_over_http(&self) -> u64 {
        self.over_http.load(Ordering::Relaxed)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    /// The OTLP/HTTP listener, on its own thread and actix system.
    fn serve_http(receiver: Receiver) -> String {
        use actix_web::{App, HttpServer, web};
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let receiver = web::Data::new(receiver);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(receiver.clone())
                        // A collector's default limit for one request.
                        .app_data(web::PayloadConfig::new(64 << 20))
                        .route("/v1/traces", web::post().to(http_export))
                })
                .workers(1)
                .bind(("127.0.0.1", 0))
                .unwrap();
                tx.send(server.addrs()[0]).unwrap();
                server.run().await.unwrap();
            });
        });
        let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        format!("http://{addr}")
    }

    /// Waits for a span named `name` that links to a span of `trace_id`.
    pub async fn await_linked(&self, name: &str, trace_id: &str) -> Span {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .find(|s| s.name == name && s.links.iter().any(|(t, _)| t == trace_id))
                .cloned();
            if let Some(span) = found {
                return span;
            }
            assert!(
                Instant::now() < deadline,
                "no {name} span linked to {trace_id}"
            );
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the trace holds spans named as `names` (each at least as
    /// often as listed), then returns the whole trace.
    pub async fn await_trace(&self, trace_id: &str, names: &[&str]) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let trace: Vec<Span> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.trace_id == trace_id)
                .cloned()
                .collect();
            let complete = names.iter().all(|name| {
                let wanted = names.iter().filter(|n| *n == name).count();
                trace.iter().filter(|s| s.name == *name).count() >= wanted
            });
            if complete {
                return trace;
            }
            assert!(
                Instant::now() < deadline,
                "trace {trace_id} still lacks some of {names:?}; has {:?}",
                trace.iter().map(|s| &s.name).collect::<Vec<_>>()
            );
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
