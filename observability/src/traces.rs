//! The tracer provider. Export runs on a dedicated one-thread runtime with a
//! batch processor, so a slow, dead or absent collector never touches a
//! request: spans queue (and, past the queue, are dropped) while requests go
//! on. Export failures are reported once, then quietly counted until export
//! works again — a dead collector must not flood the log.
//!
//! Standard variables: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; `OTEL_COLLECTOR_ENDPOINT` is
//! accepted too), `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER` (+`_ARG`),
//! `OTEL_SDK_DISABLED`, `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc` only in this
//! build), `OTEL_BSP_*` for the batch processor.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use opentelemetry::global;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::logs::JsonLines;

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
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Installs the global subscriber (JSON logs, and traces unless
/// `OTEL_SDK_DISABLED=true`) and the W3C propagator. A second call does
/// nothing but return an inert guard (tests start several apps).
pub fn init(default_service_name: &str) -> Telemetry {
    global::set_text_map_propagator(TraceContextPropagator::new());
    // RUST_LOG chooses what is *logged*; spans are exported at info and
    // above whatever it says, so quieting the logs never empties Jaeger.
    let user_filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    let log_filter = EnvFilter::try_new(format!("{user_filter},{EXPORT_PATH_OFF}"))
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{EXPORT_PATH_OFF}")));
    let trace_filter = EnvFilter::new(format!("info,{EXPORT_PATH_OFF}"));

    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let (provider, runtime) = if disabled {
        (None, None)
    } else {
        match build_provider(default_service_name) {
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
        // the last one reads the clock on every enter and exit.
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(default_service_name.to_owned()))
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_filter(trace_filter)
    });
    let installed = tracing_subscriber::registry()
        .with(otel_layer)
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(JsonLines)
                .with_filter(log_filter),
        )
        .try_init()
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
    }
    Telemetry { provider, runtime }
}

fn build_provider(
    default_service_name: &str,
) -> Result<(SdkTracerProvider, tokio::runtime::Runtime), Box<dyn std::error::Error>> {
    if let Ok(protocol) = std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL")
        && protocol != "grpc"
    {
        eprintln!(
            "OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported by this build; using grpc"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otel-export")
        .enable_all()
        .build()?;
    let standard_endpoint = [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some());
    let mut builder = SpanExporter::builder().with_tonic();
    if !standard_endpoint && let Ok(endpoint) = std::env::var("OTEL_COLLECTOR_ENDPOINT") {
        let endpoint = if endpoint.contains("://") {
            endpoint
        } else {
            format!("http://{endpoint}")
        };
        builder = builder.with_endpoint(endpoint);
    }
    let exporter = {
        let _entered = runtime.enter();
        builder.build()?
    };
    let service_name =
        std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| default_service_name.to_owned());
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(QuietExporter::new(exporter))
        .with_resource(Resource::builder().with_service_name(service_name).build())
        .build();
    Ok((provider, runtime))
}

/// Reports the first export failure, stays quiet while the collector is
/// down, and says once when export works again.
struct QuietExporter<E> {
    inner: E,
    failing: AtomicBool,
    dropped_batches: AtomicU64,
}

impl<E> QuietExporter<E> {
    fn new(inner: E) -> Self {
        Self {
            inner,
            failing: AtomicBool::new(false),
            dropped_batches: AtomicU64::new(0),
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for QuietExporter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuietExporter")
            .field("inner", &self.inner)
            .finish()
    }
}

impl<E: opentelemetry_sdk::trace::SpanExporter> opentelemetry_sdk::trace::SpanExporter
    for QuietExporter<E>
{
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    let dropped = self.dropped_batches.swap(0, Ordering::Relaxed);
                    tracing::info!(dropped_batches = dropped, "trace export works again");
                }
            }
            Err(e) => {
                self.dropped_batches.fetch_add(1, Ordering::Relaxed);
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        error = %e,
                        "trace export failed (is the collector up?); spans are dropped, further failures are not logged"
                    );
                }
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
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
