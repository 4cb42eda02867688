//! An OTLP trace sink for benchmarks: it takes what a collector takes, over
//! gRPC and over HTTP (`http/protobuf`), and counts the spans. Prints its
//! gRPC endpoint, then its HTTP one, then (on stderr) the spans received,
//! whenever the count changes (checked ten times a second). `make bench`
//! uses it.
//!
//! It shares the benchmark's cores with the services, so it reads each
//! request only down to the spans and skips their fields: building every
//! span and attribute, as the tests' receiver does, cost ~22 CPU µs an
//! order here, a fifth of what exporting costs the services, and the
//! throughput ratios would have charged it to them. A request that is not
//! a valid `ExportTraceServiceRequest` down to that depth is refused.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::codegen::{Body, BoxFuture, Context, Poll, Service, StdError, http};
use tonic::transport::server::TcpIncoming;

/// `ExportTraceServiceRequest`, read as far as its spans.
#[derive(Clone, PartialEq, prost::Message)]
struct Counted {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<CountedResource>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct CountedResource {
    #[prost(message, repeated, tag = "2")]
    scope_spans: Vec<CountedScope>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct CountedScope {
    /// Zero-sized: the spans' fields are skipped and nothing is allocated.
    #[prost(message, repeated, tag = "2")]
    spans: Vec<Skipped>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Skipped {}

impl Counted {
    fn spans(&self) -> u64 {
        let spans = self.resource_spans.iter().flat_map(|r| &r.scope_spans);
        spans.map(|s| s.spans.len() as u64).sum()
    }
}

const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The trace service, with the generated server's routing and tonic's own
/// gRPC framing, decoding into [`Counted`].
#[derive(Clone)]
struct GrpcSink(Arc<AtomicU64>);

impl tonic::server::NamedService for GrpcSink {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl tonic::server::UnaryService<Counted> for GrpcSink {
    type Response = ExportTraceServiceResponse;
    type Future = std::future::Ready<Result<tonic::Response<Self::Response>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<Counted>) -> Self::Future {
        self.0
            .fetch_add(request.get_ref().spans(), Ordering::Relaxed);
        std::future::ready(Ok(tonic::Response::new(
            ExportTraceServiceResponse::default(),
        )))
    }
}

impl<B> Service<http::Request<B>> for GrpcSink
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let sink = self.clone();
        Box::pin(async move {
            if request.uri().path() != EXPORT {
                return Ok(tonic::Status::unimplemented(request.uri().path()).into_http());
            }
            let codec = tonic_prost::ProstCodec::<ExportTraceServiceResponse, Counted>::default();
            // A collector's default limit for one request.
            let mut grpc =
                tonic::server::Grpc::new(codec).apply_max_message_size_config(Some(64 << 20), None);
            Ok(grpc.unary(sink, request).await)
        })
    }
}

fn serve_grpc(received: Arc<AtomicU64>) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let incoming = TcpIncoming::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
            tx.send(incoming.local_addr().unwrap()).unwrap();
            tonic::transport::Server::builder()
                .serve_with_incoming(GrpcSink(received), incoming)
                .await
                .unwrap();
        });
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap()
}

/// `POST /v1/traces` with a protobuf body, as OTLP/HTTP sends it.
async fn http_export(
    received: actix_web::web::Data<AtomicU64>,
    body: actix_web::web::Bytes,
) -> actix_web::HttpResponse {
    match Counted::decode(body) {
        Ok(request) => {
            received.fetch_add(request.spans(), Ordering::Relaxed);
            actix_web::HttpResponse::Ok()
                .content_type("application/x-protobuf")
                .body(ExportTraceServiceResponse::default().encode_to_vec())
        }
        Err(e) => actix_web::HttpResponse::BadRequest().body(e.to_string()),
    }
}

fn serve_http(received: Arc<AtomicU64>) -> SocketAddr {
    use actix_web::{App, HttpServer, web};
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let received = web::Data::from(received);
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(received.clone())
                    .app_data(web::PayloadConfig::new(64 << 20))
                    .route("/v1/traces", web::post().to(http_export))
            })
            .workers(1)
            // SIGTERM ends the process, not only this listener.
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .unwrap();
            tx.send(server.addrs()[0]).unwrap();
            server.run().await.unwrap();
        });
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap()
}

fn main() {
    let received = Arc::new(AtomicU64::new(0));
    println!("http://{}", serve_grpc(received.clone()));
    println!("http://{}", serve_http(received.clone()));
    let mut reported = u64::MAX;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = received.load(Ordering::Relaxed);
        if now != reported {
            eprintln!("spans received: {now}");
            reported = now;
        }
    }
}
