//! What the export path counts: every span exported or dropped, and why,
//! so that none is lost silently; and the one log line per outage.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SpanData, SpanProcessor};
use prometheus::IntCounter;

use crate::metric_names as names;

/// Spans that left (or failed to leave) this process, for `/metrics`.
pub struct SpanCounters {
    pub exported: IntCounter,
    pub dropped: prometheus::IntCounterVec,
    /// The queue was full when the span ended.
    pub dropped_queue_full: IntCounter,
    /// The collector did not take the batch.
    pub dropped_export_failed: IntCounter,
}

/// The process's span counters (one set, whichever apps register them).
pub fn span_counters() -> &'static SpanCounters {
    static COUNTERS: OnceLock<SpanCounters> = OnceLock::new();
    COUNTERS.get_or_init(|| {
        let dropped = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                names::SPANS_DROPPED,
                "Spans not exported, by reason: the export queue was full, or the collector refused or missed the batch.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        SpanCounters {
            exported: IntCounter::new(names::SPANS_EXPORTED, "Spans the collector accepted.")
                .expect("valid metric"),
            dropped_queue_full: dropped.with_label_values(&["queue_full"]),
            dropped_export_failed: dropped.with_label_values(&["export_failed"]),
            dropped,
        }
    })
}

/// Counts the spans in flight between `on_end` and the end of their export,
/// and drops (counting) what would not fit: the batch processor's own
/// queue, behind it, then never overflows, and so never drops unseen.
#[derive(Debug)]
pub(super) struct Gate {
    pub(super) inner: BatchSpanProcessor,
    pub(super) queued: Arc<AtomicUsize>,
    pub(super) max_queue: usize,
}

impl SpanProcessor for Gate {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.max_queue {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            span_counters().dropped_queue_full.inc();
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Reports the first export failure, stays quiet while the collector is
/// down, and says once when export works again.
/// Also counts what each export carried out of the queue.
pub(super) struct QuietExporter<E> {
    inner: E,
    failing: AtomicBool,
    dropped_batches: AtomicU64,
    queued: Arc<AtomicUsize>,
}

impl<E> QuietExporter<E> {
    pub(super) fn new(inner: E, queued: Arc<AtomicUsize>) -> Self {
        Self {
            inner,
            failing: AtomicBool::new(false),
            dropped_batches: AtomicU64::new(0),
            queued,
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
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        self.queued.fetch_sub(spans, Ordering::AcqRel);
        let counters = span_counters();
        match &result {
            Ok(()) => {
                counters.exported.inc_by(spans as u64);
                if self.failing.swap(false, Ordering::Relaxed) {
                    let dropped = self.dropped_batches.swap(0, Ordering::Relaxed);
                    tracing::info!(dropped_batches = dropped, "trace export works again");
                }
            }
            Err(e) => {
                counters.dropped_export_failed.inc_by(spans as u64);
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
