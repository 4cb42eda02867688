//! A batch of finished spans as the bytes of an OTLP
//! `ExportTraceServiceRequest`, written straight from the SDK's `SpanData`.
//!
//! Why not opentelemetry-otlp's gRPC exporter: it clones the whole batch
//! (for a retry it never makes here), converts every span, attribute and
//! string into opentelemetry-proto's owned structs, then encodes those —
//! three passes of allocation per span, about a sixth of order-service's
//! CPU with every trace exported. Here each span is written once into one
//! buffer; the only allocation is the buffer's growth.
//!
//! The encoding is the one opentelemetry-proto's conversion produces
//! (same fields, same flags, empty fields left out as proto3 does); the
//! tests decode both and compare.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;

/// The request for `batch`, its spans grouped by instrumentation scope
/// under one resource.
pub fn export_request(batch: &[SpanData], resource: &Resource) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + batch.len() * 512);
    // ExportTraceServiceRequest.resource_spans = 1
    nested(&mut out, 1, |out| {
        // ResourceSpans.resource = 1
        nested(out, 1, |out| {
            for (key, value) in resource.iter() {
                // Resource.attributes = 1
                key_value(out, 1, key.as_str(), value);
            }
        });
        let mut scopes: Vec<&InstrumentationScope> = Vec::new();
        for span in batch {
            if !scopes.contains(&&span.instrumentation_scope) {
                scopes.push(&span.instrumentation_scope);
            }
        }
        for scope in scopes {
            // ResourceSpans.scope_spans = 2
            nested(out, 2, |out| scope_spans(out, scope, batch));
        }
        // ResourceSpans.schema_url = 3
        string(out, 3, resource.schema_url().unwrap_or_default());
    });
    out
}

fn scope_spans(out: &mut Vec<u8>, scope: &InstrumentationScope, batch: &[SpanData]) {
    // ScopeSpans.scope = 1
    nested(out, 1, |out| {
        string(out, 1, scope.name());
        string(out, 2, scope.version().unwrap_or_default());
        for kv in scope.attributes() {
            key_value(out, 3, kv.key.as_str(), &kv.value);
        }
    });
    for span in batch.iter().filter(|s| &s.instrumentation_scope == scope) {
        // ScopeSpans.spans = 2
        nested(out, 2, |out| one_span(out, span));
    }
    // ScopeSpans.schema_url = 3
    string(out, 3, scope.schema_url().unwrap_or_default());
}

fn one_span(out: &mut Vec<u8>, span: &SpanData) {
    let ids = &span.span_context;
    bytes(out, 1, &ids.trace_id().to_bytes());
    bytes(out, 2, &ids.span_id().to_bytes());
    string(out, 3, &ids.trace_state().header());
    if span.parent_span_id != SpanId::INVALID {
        bytes(out, 4, &span.parent_span_id.to_bytes());
    }
    string(out, 5, &span.name);
    uint(out, 6, kind(&span.span_kind));
    fixed64(out, 7, nanos(span.start_time));
    fixed64(out, 8, nanos(span.end_time));
    for kv in &span.attributes {
        key_value(out, 9, kv.key.as_str(), &kv.value);
    }
    uint(out, 10, u64::from(span.dropped_attributes_count));
    for event in span.events.iter() {
        // Span.events = 11
        nested(out, 11, |out| {
            fixed64(out, 1, nanos(event.timestamp));
            string(out, 2, &event.name);
            for kv in &event.attributes {
                key_value(out, 3, kv.key.as_str(), &kv.value);
            }
            uint(out, 4, u64::from(event.dropped_attributes_count));
        });
    }
    uint(out, 12, u64::from(span.events.dropped_count));
    for link in span.links.iter() {
        // Span.links = 13
        nested(out, 13, |out| {
            let ids = &link.span_context;
            bytes(out, 1, &ids.trace_id().to_bytes());
            bytes(out, 2, &ids.span_id().to_bytes());
            string(out, 3, &ids.trace_state().header());
            for kv in &link.attributes {
                key_value(out, 4, kv.key.as_str(), &kv.value);
            }
            uint(out, 5, u64::from(link.dropped_attributes_count));
            fixed32(out, 6, flags(ids, ids.is_remote()));
        });
    }
    uint(out, 14, u64::from(span.links.dropped_count));
    // Span.status = 15, always present.
    nested(out, 15, |out| {
        if let Status::Error { description } = &span.status {
            string(out, 2, description);
        }
        let code = match span.status {
            Status::Unset => 0,
            Status::Ok => 1,
            Status::Error { .. } => 2,
        };
        uint(out, 3, code);
    });
    fixed32(out, 16, flags(ids, span.parent_span_is_remote));
}

/// `SpanKind` as OTLP numbers it (Unspecified is 0).
fn kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// The W3C flags, and that whether the parent is remote is known (OTLP's
/// `SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK`, 0x100; remote: 0x200).
fn flags(ids: &SpanContext, remote: bool) -> u32 {
    u32::from(ids.trace_flags().to_u8()) | 0x100 | if remote { 0x200 } else { 0 }
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A `KeyValue` message as field `field`.
fn key_value(out: &mut Vec<u8>, field: u32, key: &str, value: &Value) {
    nested(out, field, |out| {
        string(out, 1, key);
        // KeyValue.value = 2
        nested(out, 2, |out| any_value(out, value));
    });
}

/// The fields of an `AnyValue`: its one `value`, written even when it is
/// the default (a oneof is present or not).
fn any_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(s) => present(out, 1, s.as_str().as_bytes()),
        Value::Bool(b) => {
            key(out, 2, VARINT);
            varint(out, u64::from(*b));
        }
        Value::I64(i) => {
            key(out, 3, VARINT);
            varint(out, *i as u64);
        }
        Value::F64(f) => {
            key(out, 4, FIXED64);
            out.extend_from_slice(&f.to_le_bytes());
        }
        // AnyValue.array_value = 5, ArrayValue.values = 1
        Value::Array(array) => nested(out, 5, |out| match array {
            Array::Bool(values) => each(out, values, |b| Value::Bool(*b)),
            Array::I64(values) => each(out, values, |i| Value::I64(*i)),
            Array::F64(values) => each(out, values, |f| Value::F64(*f)),
            Array::String(values) => {
                for s in values {
                    nested(out, 1, |out| present(out, 1, s.as_str().as_bytes()));
                }
            }
            // Array is non-exhaustive: a kind added later is left out.
            _ => {}
        }),
        // Value is non-exhaustive: a kind added later is left empty.
        _ => {}
    }
}

fn each<T>(out: &mut Vec<u8>, values: &[T], to_value: impl Fn(&T) -> Value) {
    for value in values {
        nested(out, 1, |out| any_value(out, &to_value(value)));
    }
}

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

fn varint(out: &mut Vec<u8>, value: u64) {
    let (bytes, n) = varint_bytes(value);
    out.extend_from_slice(&bytes[..n]);
}

fn varint_bytes(mut value: u64) -> ([u8; 10], usize) {
    let (mut bytes, mut n) = ([0u8; 10], 0);
    while value >= 0x80 {
        bytes[n] = (value as u8) | 0x80;
        value >>= 7;
        n += 1;
    }
    bytes[n] = value as u8;
    (bytes, n + 1)
}

fn key(out: &mut Vec<u8>, field: u32, wire_type: u32) {
    varint(out, u64::from(field << 3 | wire_type));
}

/// A length-delimited field whose contents `write` appends in place. One
/// byte is kept for the length, all it takes below 128 bytes (an attribute
/// and its value, as a rule), so such contents never move; longer ones move
/// once, by the length's extra bytes. Encoding a client span of ten
/// attributes took ~555 ns instead of ~700 when every level moved.
fn nested(out: &mut Vec<u8>, field: u32, write: impl FnOnce(&mut Vec<u8>)) {
    key(out, field, LEN);
    let start = out.len();
    out.push(0);
    write(out);
    let (len, n) = varint_bytes((out.len() - start - 1) as u64);
    if n == 1 {
        out[start] = len[0];
    } else {
        out.splice(start..start + 1, len[..n].iter().copied());
    }
}

/// Proto3 bytes: left out when empty.
fn bytes(out: &mut Vec<u8>, field: u32, value: &[u8]) {
    if !value.is_empty() {
        present(out, field, value);
    }
}

/// A proto3 string: left out when empty.
fn string(out: &mut Vec<u8>, field: u32, value: &str) {
    bytes(out, field, value.as_bytes());
}

/// A length-delimited field written even when empty (a oneof's member).
fn present(out: &mut Vec<u8>, field: u32, value: &[u8]) {
    key(out, field, LEN);
    varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

fn uint(out: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        key(out, field, VARINT);
        varint(out, value);
    }
}

fn fixed64(out: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        key(out, field, FIXED64);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

fn fixed32(out: &mut Vec<u8>, field: u32, value: u32) {
    if value != 0 {
        key(out, field, FIXED32);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::time::Duration;

    use opentelemetry::KeyValue;
    use opentelemetry::trace::{Event, Link, SpanContext, TraceFlags, TraceId, TraceState};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use prost::Message;

    use super::*;

    fn ids(trace: u128, span: u64, sampled: bool, remote: bool, state: &str) -> SpanContext {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let state = state.parse::<TraceState>().unwrap_or_default();
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            flags,
            remote,
            state,
        )
    }

    fn every_kind_of_value() -> Vec<KeyValue> {
        vec![
            KeyValue::new("s", "text"),
            KeyValue::new("empty", ""),
            KeyValue::new("b", false),
            KeyValue::new("i", -42i64),
            KeyValue::new("f", 0.25),
            KeyValue::new("zero", 0i64),
            KeyValue::new("bools", Value::Array(Array::Bool(vec![true, false]))),
            KeyValue::new("ints", Value::Array(Array::I64(vec![1, -1, i64::MAX]))),
            KeyValue::new("floats", Value::Array(Array::F64(vec![1.5]))),
            KeyValue::new(
                "strings",
                Value::Array(Array::String(vec!["a".into(), "".into()])),
            ),
        ]
    }

    fn span(n: u64, scope: &InstrumentationScope) -> SpanData {
        let start = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789 + n);
        SpanData {
            span_context: ids(
                7,
                n + 1,
                n.is_multiple_of(2),
                false,
                if n == 0 { "k=v,o=p" } else { "" },
            ),
            parent_span_id: if n == 0 {
                SpanId::INVALID
            } else {
                SpanId::from(n)
            },
            parent_span_is_remote: n == 1,
            span_kind: [SpanKind::Server, SpanKind::Client, SpanKind::Internal][n as usize % 3]
                .clone(),
            name: Cow::Owned(format!("span {n}")),
            start_time: start,
            end_time: start + Duration::from_micros(250),
            attributes: if n == 0 {
                every_kind_of_value()
            } else {
                vec![KeyValue::new("n", n as i64)]
            },
            dropped_attributes_count: n as u32,
            events: {
                let mut events = SpanEvents::default();
                events.events = vec![Event::new("retry", start, every_kind_of_value(), 1)];
                events.dropped_count = 2;
                events
            },
            links: {
                let mut links = SpanLinks::default();
                let attributes = vec![KeyValue::new("l", 1i64)];
                links.links = vec![Link::new(ids(9, 3, true, true, "a=b"), attributes, 0)];
                links
            },
            status: match n % 3 {
                0 => Status::error("payment refused"),
                1 => Status::Ok,
                _ => Status::Unset,
            },
            instrumentation_scope: scope.clone(),
        }
    }

    /// Scopes in name order: the SDK's conversion groups them in a
    /// hash map's order.
    fn sorted(mut request: ExportTraceServiceRequest) -> ExportTraceServiceRequest {
        for resource_spans in &mut request.resource_spans {
            resource_spans.scope_spans.sort_by(|a, b| {
                a.scope
                    .as_ref()
                    .map(|s| &s.name)
                    .cmp(&b.scope.as_ref().map(|s| &s.name))
            });
        }
        request
    }

    #[test]
    fn a_batch_decodes_to_what_the_sdks_own_conversion_builds() {
        let plain = InstrumentationScope::builder("order-service").build();
        let full = InstrumentationScope::builder("actors")
            .with_version("1.2.3")
            .with_schema_url("https://opentelemetry.io/schemas/1.30.0")
            .with_attributes([KeyValue::new("scope.attr", true)])
            .build();
        let batch: Vec<SpanData> = (0..6)
            .map(|n| span(n, if n < 4 { &plain } else { &full }))
            .collect();
        let resource = Resource::builder_empty()
            .with_schema_url(
                [KeyValue::new("service.name", "order-service")],
                "https://opentelemetry.io/schemas/1.30.0",
            )
            .build();

        let ours =
            ExportTraceServiceRequest::decode(&export_request(&batch, &resource)[..]).unwrap();
        let theirs = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                batch,
                &ResourceAttributesWithSchema::from(&resource),
            ),
        };
        assert_eq!(sorted(ours), sorted(theirs));
    }

    #[test]
    fn an_empty_batch_is_a_request_with_no_span() {
        let request = ExportTraceServiceRequest::decode(
            &export_request(&[], &Resource::builder_empty().build())[..],
        )
        .unwrap();
        let spans: usize = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        assert_eq!(spans, 0);
    }

    #[test]
    fn contents_of_every_length_round_a_lengths_second_byte_decode() {
        use opentelemetry_proto::tonic::common::v1::KeyValue as Decoded;
        use opentelemetry_proto::tonic::common::v1::any_value::Value as DecodedValue;
        for len in [0, 1, 120, 123, 124, 125, 126, 127, 128, 200, 16_400] {
            let text = "x".repeat(len);
            let mut out = Vec::new();
            key_value(&mut out, 1, "k", &Value::String(text.clone().into()));
            // The field's own key and length, then the KeyValue.
            let decoded = Decoded::decode_length_delimited(&out[1..]).unwrap();
            assert_eq!(decoded.key, "k");
            let value = decoded.value.and_then(|v| v.value);
            assert_eq!(value, Some(DecodedValue::StringValue(text)), "length {len}");
        }
    }
}
