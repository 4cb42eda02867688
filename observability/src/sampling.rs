//! Head sampling, decided once per trace before its first span exists.
//!
//! The SDK samples when a span is *built*, and tracing-opentelemetry builds
//! one for every span it sees (fields formatted, attributes collected)
//! before asking: an unsampled trace cost nearly as much as a sampled one.
//! Here the decision is taken at the root — from the caller's
//! `traceparent` flag or the configured ratio — and a per-layer filter
//! keeps every span of an unsampled trace away from the OTel layer: a child
//! is seen by it exactly when its parent was. The trace still has ids: the
//! root of an unsampled trace keeps them in its [`Unsampled`] extension, so
//! logs carry a trace id and the next hop receives `traceparent` with the
//! sampled flag off and decides the same way.
//!
//! Below an unsampled root nothing is built at all ([`UnsampledSubtreeOff`]):
//! its children are `Span::none()`, so an unsampled order costs one span
//! instead of twelve. Code that moves work to another task or thread must
//! carry the root along for that (as the order flow does when its own span
//! is off); the actors create nothing for a message whose span is none.
//!
//! The filters read the *contextual* parent (the span current when a span
//! is created). A span created with an explicit `parent:` must be created
//! inside that parent's scope instead (`parent.in_scope(|| info_span!(…))`),
//! as the actors do; otherwise it is judged as a root.

use std::cell::Cell;
use std::sync::OnceLock;

use opentelemetry::trace::{SpanContext, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use tracing::span::Id;
use tracing::{Metadata, Subscriber, subscriber::Interest};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Registry;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

/// `OTEL_TRACES_SAMPLER` (+ `OTEL_TRACES_SAMPLER_ARG`), as the OTel
/// specification defines them; the default is `parentbased_always_on`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    rule: Rule,
    /// Whether a caller's decision (its `traceparent` flag) is followed.
    parent_based: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Rule {
    Always,
    Never,
    /// Sampled when the trace id's low 63 bits fall below this bound (the
    /// SDK's `TraceIdRatioBased`, so every service agrees on a trace).
    Ratio(u64),
}

impl Sampler {
    pub fn from_env() -> Self {
        let name = std::env::var("OTEL_TRACES_SAMPLER").unwrap_or_default();
        let ratio = std::env::var("OTEL_TRACES_SAMPLER_ARG")
            .ok()
            .and_then(|arg| arg.trim().parse::<f64>().ok())
            .unwrap_or(1.0);
        Self::named(name.trim(), ratio)
    }

    fn named(name: &str, ratio: f64) -> Self {
        let (rule, parent_based) = match name {
            "always_on" => (Rule::Always, false),
            "always_off" => (Rule::Never, false),
            "traceidratio" => (Rule::ratio(ratio), false),
            "parentbased_always_off" => (Rule::Never, true),
            "parentbased_traceidratio" => (Rule::ratio(ratio), true),
            "" | "parentbased_always_on" => (Rule::Always, true),
            other => {
                eprintln!("OTEL_TRACES_SAMPLER={other} is not known; using parentbased_always_on");
                (Rule::Always, true)
            }
        };
        Self { rule, parent_based }
    }

    /// Whether the trace `trace_id`, continued from `remote` when the caller
    /// sent one, is sampled.
    pub fn sampled(&self, remote: Option<&SpanContext>, trace_id: TraceId) -> bool {
        if self.parent_based
            && let Some(remote) = remote.filter(|r| r.is_valid())
        {
            return remote.is_sampled();
        }
        match self.rule {
            Rule::Always => true,
            Rule::Never => false,
            Rule::Ratio(bound) => {
                let bytes = trace_id.to_bytes();
                let low = u64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes")) >> 1;
                low < bound
            }
        }
    }
}

impl Rule {
    fn ratio(ratio: f64) -> Self {
        if ratio >= 1.0 {
            Rule::Always
        } else if ratio <= 0.0 || ratio.is_nan() {
            Rule::Never
        } else {
            // As the SDK computes it: ratio × 2^63.
            Rule::Ratio((ratio * (1u64 << 63) as f64) as u64)
        }
    }
}

static SAMPLER: OnceLock<Sampler> = OnceLock::new();

/// The process's sampler, once traces are exported; none otherwise (then
/// nothing is decided, extracted or propagated).
pub fn sampler() -> Option<&'static Sampler> {
    SAMPLER.get()
}

pub(crate) fn install(sampler: Sampler) {
    let _ = SAMPLER.set(sampler);
}

thread_local! {
    /// The decision for the next root span created on this thread, set by
    /// [`decided_root`] around the span's creation.
    static ROOT: Cell<Option<bool>> = const { Cell::new(None) };
}

/// The ids of an unsampled trace, kept on its root span (in the registry's
/// extensions): what the trace would have been called, for logs and for
/// `traceparent`.
#[derive(Debug, Clone)]
pub struct Unsampled(pub SpanContext);

/// Creates a root span with the decision already taken (`sampled`) for the
/// trace `trace_id`; an unsampled root keeps its ids, with the caller's
/// `state`.
pub fn decided_root(
    sampled: bool,
    trace_id: TraceId,
    state: TraceState,
    make: impl FnOnce() -> tracing::Span,
) -> tracing::Span {
    ROOT.set(Some(sampled));
    let span = make();
    ROOT.set(None);
    if !sampled && let Some(id) = span.id() {
        let ids = SpanContext::new(
            trace_id,
            RandomIdGenerator::default().new_span_id(),
            TraceFlags::NOT_SAMPLED,
            false,
            state,
        );
        with_span(&id, |span| span.extensions_mut().insert(Unsampled(ids)));
    }
    span
}

/// A new trace's root span (work of the service's own, not a request's),
/// sampled by the configured ratio. `make` should create it with
/// `parent: None`.
pub fn new_root(make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    match sampler() {
        Some(sampler) => {
            let trace_id = new_trace_id();
            decided_root(
                sampler.sampled(None, trace_id),
                trace_id,
                TraceState::default(),
                make,
            )
        }
        None => make(),
    }
}

/// A new trace id, for a root that has no caller's.
pub fn new_trace_id() -> TraceId {
    RandomIdGenerator::default().new_trace_id()
}

/// The ids of the unsampled trace `id` belongs to, from its root.
pub(crate) fn unsampled_ids(id: &Id) -> Option<SpanContext> {
    with_span(id, |span| {
        span.scope()
            .find_map(|s| s.extensions().get::<Unsampled>().map(|u| u.0.clone()))
    })
    .flatten()
}

/// The ids of span `id` if it is itself an unsampled root.
pub(crate) fn own_unsampled_ids(id: &Id) -> Option<SpanContext> {
    with_span(id, |span| {
        span.extensions().get::<Unsampled>().map(|u| u.0.clone())
    })
    .flatten()
}

/// `f` on the registry's record of span `id` (every layer's, unfiltered).
fn with_span<R>(id: &Id, f: impl FnOnce(SpanRef<'_, Registry>) -> R) -> Option<R> {
    let mut f = Some(f);
    tracing::dispatcher::get_default(|dispatch| {
        let span = dispatch.downcast_ref::<Registry>()?.span(id)?;
        f.take().map(|f| f(span))
    })
}

/// The global half: a span whose parent is an unsampled root is not built
/// (for any layer). Roots always are: an unsampled one keeps its trace's ids.
pub struct UnsampledSubtreeOff {
    /// The most verbose level the process's filters want (`None`: any).
    level: Option<LevelFilter>,
}

impl UnsampledSubtreeOff {
    /// Beside layers filtered by `filters`. A layer without a level hint
    /// counts as wanting `TRACE`, and this one wants no level of its own:
    /// it only turns spans off. So it hands on the most verbose level the
    /// filters want; without it the process's level was `TRACE`, and
    /// every `trace!` of actix-http's dispatcher (about 24 an order)
    /// asked the whole stack whether it was wanted. Below the level, a
    /// callsite costs one comparison.
    pub fn beside(filters: &[&EnvFilter]) -> Self {
        // A filter without a hint may want any level.
        let hints: Option<Vec<LevelFilter>> = filters.iter().map(|f| f.max_level_hint()).collect();
        Self {
            level: hints.and_then(|hints| hints.into_iter().max()),
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for UnsampledSubtreeOff {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if meta.is_span() {
            Interest::sometimes()
        } else {
            Interest::always()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, cx: Context<'_, S>) -> bool {
        if !meta.is_span() || ROOT.get().is_some() {
            return true;
        }
        let parent = cx.current_span().id().and_then(|id| cx.span(id));
        parent.is_none_or(|parent| parent.extensions().get::<Unsampled>().is_none())
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.level
    }
}

/// The per-layer filter in front of the OTel layer: a root span passes as
/// decided (by [`decided_root`], else by the sampler); any other span
/// passes exactly when its parent did. Events always pass (the layer adds
/// them only to a span it knows).
pub struct HeadSampling(pub Sampler);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Filter<S> for HeadSampling {
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        if !meta.is_span() {
            return true;
        }
        if let Some(decided) = ROOT.take() {
            return decided;
        }
        match cx.current_span().id() {
            // Filtered: the parent is found only if this filter let it pass.
            Some(parent) => cx.span(parent).is_some(),
            None => self.0.sampled(None, new_trace_id()),
        }
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if meta.is_span() {
            Interest::sometimes()
        } else {
            Interest::always()
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::SpanId;

    use super::*;

    fn remote(sampled: bool) -> SpanContext {
        SpanContext::new(
            TraceId::from(7u128),
            SpanId::from(9u64),
            if sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::NOT_SAMPLED
            },
            true,
            TraceState::default(),
        )
    }

    #[test]
    fn parent_based_samplers_follow_the_callers_flag() {
        let on = Sampler::named("parentbased_always_on", 1.0);
        assert!(on.sampled(None, TraceId::from(1u128)));
        assert!(!on.sampled(Some(&remote(false)), TraceId::from(7u128)));
        let off = Sampler::named("parentbased_always_off", 1.0);
        assert!(off.sampled(Some(&remote(true)), TraceId::from(7u128)));
        assert!(!off.sampled(None, TraceId::from(7u128)));
        // Not parent-based: the caller's flag is ignored.
        let always = Sampler::named("always_on", 1.0);
        assert!(always.sampled(Some(&remote(false)), TraceId::from(7u128)));
    }

    #[test]
    fn the_subtree_filter_hands_on_the_level_the_filtered_layers_want() {
        use tracing_subscriber::Layer;
        use tracing_subscriber::filter::{FilterExt, filter_fn};
        use tracing_subscriber::layer::SubscriberExt;
        // As `traces::init` stacks them: the filters' own hints say
        // nothing (`HeadSampling` and `filter_fn` have none).
        let (logs, traces) = (EnvFilter::new("warn"), EnvFilter::new("info"));
        let subtree_off = UnsampledSubtreeOff::beside(&[&logs, &traces]);
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_filter(logs.and(filter_fn(|meta| meta.is_event()))),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .with_filter(traces.and(HeadSampling(Sampler::named("", 1.0)))),
            )
            .with(subtree_off);
        assert_eq!(subscriber.max_level_hint(), Some(LevelFilter::INFO));
        // Nothing that a filtered layer wants is turned off.
        let dispatch = tracing::Dispatch::new(subscriber);
        tracing::dispatcher::with_default(&dispatch, || {
            assert!(!tracing::info_span!("kept").is_disabled());
            assert!(tracing::enabled!(tracing::Level::WARN));
            assert!(!tracing::enabled!(tracing::Level::DEBUG));
        });
    }

    #[test]
    fn the_ratio_is_decided_by_the_trace_id_as_the_sdk_does() {
        let tenth = Sampler::named("parentbased_traceidratio", 0.1);
        // Low 64 bits shifted right by one, against 0.1 × 2^63.
        assert!(tenth.sampled(None, TraceId::from(0x1u128)));
        assert!(!tenth.sampled(None, TraceId::from(u64::MAX as u128)));
        let ids = (0..10_000u128)
            .map(|i| TraceId::from(i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)));
        let sampled = ids.filter(|id| tenth.sampled(None, *id)).count();
        assert!((800..1200).contains(&sampled), "{sampled} of 10000");
        assert_eq!(Sampler::named("traceidratio", 1.5).rule, Rule::Always);
        assert_eq!(Sampler::named("traceidratio", 0.0).rule, Rule::Never);
    }
}
