//! Prometheus metrics: one registry per application (tests run several
//! apps in one process), the request metrics every route gets from a
//! middleware, and the text exposition for `/metrics`.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::metric_names as names;

/// Latency buckets in seconds, from a fast replay to the payment budget and past it.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
];

pub fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

pub fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

pub fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

pub fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

/// The process's span export counters, on this registry too.
pub fn register_span_counters(registry: &Registry) {
    let counters = crate::traces::span_counters();
    registry
        .register(Box::new(counters.exported.clone()))
        .expect("metric registered once");
    registry
        .register(Box::new(counters.dropped.clone()))
        .expect("metric registered once");
}

/// Request count and duration by method, route pattern and status.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl HttpMetrics {
    pub fn new(registry: &Registry) -> Self {
        let labels = &["method", "route", "status"];
        let requests = counter_vec(
            registry,
            names::HTTP_REQUESTS,
            "HTTP requests answered, by method, route and status.",
            labels,
        );
        let duration = HistogramVec::new(
            HistogramOpts::new(
                names::HTTP_DURATION,
                "Time to answer an HTTP request, in seconds, by method, route and status.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            labels,
        )
        .expect("valid metric");
        registry
            .register(Box::new(duration.clone()))
            .expect("metric registered once");
        Self { requests, duration }
    }
}

/// Middleware: counts and times every request under its route *pattern*
/// (`/orders/{id}`, never the id: labels must stay few).
pub async fn record_http<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req.app_data::<web::Data<HttpMetrics>>().cloned();
    let method = crate::http::method_label(req.method());
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.call(req).await?;
    if let Some(metrics) = metrics {
        let status = response.status().as_u16().to_string();
        let labels = [method, route.as_str(), status.as_str()];
        metrics.requests.with_label_values(&labels).inc();
        metrics
            .duration
            .with_label_values(&labels)
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(response)
}

/// The registry in Prometheus text format.
pub fn exposition(registry: &Registry) -> HttpResponse {
    let mut body = Vec::new();
    let encoder = TextEncoder::new();
    match encoder.encode(&registry.gather(), &mut body) {
        Ok(()) => HttpResponse::Ok()
            .content_type(encoder.format_type())
            .body(body),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}
