//! The tracer provider. Export runs on a dedicated one-thread runtime with a
//! batch processor, so a slow, dead or absent collector never touches a
//! request: spans queue (and, past the queue, are dropped) while requests go
//! on. Export failures are reported once, then quietly counted until export
//! works again — a dead collector must not flood the log.
//!
//! No span is lost silently: a span that finds the queue full, or whose
//! batch the collector refused, is counted ([`SpanCounters`], on both
//! services' `/metrics`), and the queue's defaults are sized so that none
//! is lost at the highest rate the services reach here (`make bench`).
//!
//! Standard variables: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; `OTEL_COLLECTOR_ENDPOINT` is
//! accepted too), `OTEL_EXPORTER_OTLP_PROTOCOL` (or
//! `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`: `grpc` or `http/protobuf`),
//! `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER` (+`_ARG`),
//! `OTEL_SDK_DISABLED`, `OTEL_BSP_*` for the batch processor.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use opentelemetry::global;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler as SdkSampler, SdkTracerProvider,
};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::logs::JsonLines;
use crate::sampling::{HeadSampling, Sampler, UnsampledSubtreeOff};

mod counting;
mod encode;
mod grpc;

use counting::{Gate, QuietExporter};
pub use counting::{SpanCounters, span_counters};
use grpc::GrpcExporter;

/// Crates of the export path itself: logging their events would feed the
/// exporter with its own traffic.
const EXPORT_PATH_OFF: &str = "h2=off,hyper=off,hyper_util=off,tonic=off,tower=off,opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off";

/// Keeps the exporter alive; [`Telemetry::shutdown`] flushes the last spans.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Telemetry {
    /// Exports what is queued now (blocking; not on an async worker).
    pub fn flush(&self) {
        if let Some(provider) = &self.provider {
            let _ = provider.force_flush();
        }
    }

    /// Flushes and stops the exporter. Blocking: from an async context call
    /// it through `spawn_blocking`.
    pub fn shutdown(mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("telemetry shutdown: {e}");
        }
    }
}

/// However the guard goes (a service that failed to start drops it inside
/// its async runtime), the export runtime is let go without blocking.
impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Installs the global subscriber (JSON logs, and traces unless
/// `OTEL_SDK_DISABLED=true`) and the W3C propagator. A second call does
/// nothing but return an inert guard (tests start several apps).
pub fn init(default_service_name: &'static str) -> Telemetry {
    global::set_text_map_propagator(TraceContextPropagator::new());
    // RUST_LOG chooses what is *logged*; spans are exported at info and
    // above whatever it says, so quieting the logs never empties Jaeger.
    let user_filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    // actix logs every malformed request at ERROR: the client's fault, and
    // a client could flood the log with them. Off unless RUST_LOG names
    // actix_http (`RUST_LOG=info,actix_http=debug` shows them).
    let parse_errors = if user_filter.contains("actix_http") {
        ""
    } else {
        ",actix_http::h1=off"
    };
    let log_filter = EnvFilter::try_new(format!("{user_filter}{parse_errors},{EXPORT_PATH_OFF}"))
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{EXPORT_PATH_OFF}")));
    let trace_filter = EnvFilter::new(format!("info,{EXPORT_PATH_OFF}"));
    let subtree_off = UnsampledSubtreeOff::beside(&[&log_filter, &trace_filter]);
    let sampler = Sampler::from_env();

    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let (provider, runtime) = if disabled {
        (None, None)
    } else {
        match start_export(default_service_name) {
            Ok((provider, runtime)) => (Some(provider), Some(runtime)),
            Err(e) => {
                eprintln!("tracing export disabled: {e}");
                (None, None)
            }
        }
    };
    let otel_layer = provider.as_ref().map(|provider| {
        // The bridge's defaults add source location, thread, target and
        // busy/idle times to every span — none of them read by anyone, and
        // the last one reads the clock on every enter and exit. Context
        // activation makes each poll of an instrumented future attach an
        // OTel context too; nothing here reads `Context::current()`.
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(default_service_name))
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_context_activation(false)
            .with_filter(trace_filter.and(HeadSampling(sampler)))
    });
    // Log lines name their span but print none of its fields: spans are
    // kept out of this layer, which would format every span's fields.
    let events_only = filter_fn(|meta| meta.is_event());
    let logs = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .event_format(JsonLines)
            .with_filter(log_filter.and(events_only)),
    );
    // Not `.with(Option<layer>)`: an absent layer counts as one interested
    // in everything, and every span would then be built for nobody.
    let installed = match otel_layer {
        // Outermost, so that it is asked first, before the OTel layer's
        // filter takes the root's decision.
        Some(otel_layer) => logs.with(otel_layer).with(subtree_off).try_init(),
        None => logs.try_init(),
    }
    .is_ok();
    if !installed {
        if let Some(provider) = provider {
            let _ = provider.shutdown();
        }
        return Telemetry {
            provider: None,
            runtime,
        };
    }
    if let Some(provider) = &provider {
        global::set_tracer_provider(provider.clone());
        crate::sampling::install(sampler);
    }
    Telemetry { provider, runtime }
}

/// The OTLP transport, from `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else
/// `OTEL_EXPORTER_OTLP_PROTOCOL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

impl Protocol {
    /// gRPC unless told otherwise: the specification's default is
    /// `http/protobuf`, but the endpoints every set-up of ours and of the
    /// Go original name are the collector's gRPC port, 4317.
    pub fn from_env() -> Self {
        let chosen = std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"));
        match chosen.as_deref().map(str::trim) {
            Err(_) | Ok("grpc") => Protocol::Grpc,
            Ok("http/protobuf") => Protocol::HttpProtobuf,
            Ok(other) => {
                eprintln!(
                    "OTLP protocol {other} is not supported (grpc, http/protobuf); using grpc"
                );
                Protocol::Grpc
            }
        }
    }
}

/// Batch processor settings: `OTEL_BSP_*` when set, else ours. The
/// specification's queue of 2,048 spans and batches of 512 lost spans here
/// within a second at full load (12 spans per order, thousands of orders a
/// second); a larger queue absorbs a slow export, larger batches make
/// fewer of them (2,048 spans stay well under a collector's 4 MiB limit on
/// one gRPC message).
const DEFAULT_MAX_QUEUE: usize = 65_536;
const DEFAULT_BATCH: usize = 2_048;
const DEFAULT_DELAY_MS: usize = 1_000;

/// An `OTEL_BSP_*` setting, or ours.
fn bsp(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The tracer provider, and the one-thread runtime the gRPC exporter's
/// connection lives on.
fn start_export(
    default_service_name: &str,
) -> Result<(SdkTracerProvider, tokio::runtime::Runtime), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otel-export")
        .enable_all()
        .build()?;
    match build_provider(default_service_name, &runtime) {
        Ok(provider) => Ok((provider, runtime)),
        Err(e) => {
            // Dropped in place, a runtime blocks: not allowed inside the
            // service's own async runtime.
            runtime.shutdown_background();
            Err(e)
        }
    }
}

fn build_provider(
    default_service_name: &str,
    runtime: &tokio::runtime::Runtime,
) -> Result<SdkTracerProvider, Box<dyn std::error::Error>> {
    let standard_endpoint = [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some());
    let legacy_endpoint = std::env::var("OTEL_COLLECTOR_ENDPOINT")
        .ok()
        .filter(|_| !standard_endpoint)
        .map(|endpoint| {
            if endpoint.contains("://") {
                endpoint
            } else {
                format!("http://{endpoint}")
            }
        });
    let service_name =
        std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| default_service_name.to_owned());
    let max_queue = bsp("OTEL_BSP_MAX_QUEUE_SIZE", DEFAULT_MAX_QUEUE);
    let config = BatchConfigBuilder::default()
        .with_max_queue_size(max_queue)
        .with_max_export_batch_size(bsp("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", DEFAULT_BATCH))
        .with_scheduled_delay(Duration::from_millis(
            bsp("OTEL_BSP_SCHEDULE_DELAY", DEFAULT_DELAY_MS) as u64,
        ))
        .build();
    let queued = Arc::new(AtomicUsize::new(0));
    let batch = match Protocol::from_env() {
        Protocol::Grpc => {
            let exporter = GrpcExporter::new(legacy_endpoint, runtime)?;
            BatchSpanProcessor::builder(QuietExporter::new(exporter, queued.clone()))
                .with_batch_config(config)
                .build()
        }
        Protocol::HttpProtobuf => {
            let mut builder = SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
            if let Some(endpoint) = legacy_endpoint {
                builder =
                    builder.with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')));
            }
            // A blocking client, called from the batch processor's own
            // thread: encoding and sending stay off the request threads.
            // Built off any async runtime (it runs one of its own).
            let exporter = std::thread::spawn(move || builder.build())
                .join()
                .map_err(|_| "the OTLP/HTTP exporter could not be built")??;
            BatchSpanProcessor::builder(QuietExporter::new(exporter, queued.clone()))
                .with_batch_config(config)
                .build()
        }
    };
    let provider = SdkTracerProvider::builder()
        .with_span_processor(Gate {
            inner: batch,
            queued,
            max_queue,
        })
        // The trace's decision was taken before its root was built
        // (`crate::sampling`): every span that reaches the SDK is sampled.
        .with_sampler(SdkSampler::ParentBased(Box::new(SdkSampler::AlwaysOn)))
        .with_resource(Resource::builder().with_service_name(service_name).build())
        .build();
    Ok(provider)
}

/// For tests: logs (only when `TEST_LOG` is set) without trace export.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(tracing_subscriber::fmt::layer().event_format(JsonLines))
            .try_init();
    }
}
