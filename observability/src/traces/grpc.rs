//! The OTLP/gRPC span exporter: each batch encoded by [`super::encode`] on
//! the batch processor's thread, and sent as it is — the gRPC call carries
//! the bytes with a pass-through codec, on the export runtime's channel.
//!
//! Configured by the standard variables opentelemetry-otlp reads for
//! gRPC: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (else
//! `OTEL_EXPORTER_OTLP_ENDPOINT`, else `http://localhost:4317`),
//! `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS` (`key=value,…`, values
//! percent-encoded) and `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT` (ms, 10 s).
//! Compression is not offered (neither was it before); a partial success
//! from the collector counts as a success.

use std::fmt;
use std::time::Duration;

use bytes::{Buf, BufMut};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tonic::Status;
use tonic::client::Grpc;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use super::encode;

const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

pub(super) struct GrpcExporter {
    client: Grpc<Channel>,
    headers: MetadataMap,
    runtime: tokio::runtime::Handle,
    resource: Resource,
}

impl fmt::Debug for GrpcExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcExporter").finish_non_exhaustive()
    }
}

impl GrpcExporter {
    /// An exporter to `endpoint` (else the variables'), connecting lazily
    /// on `runtime`.
    pub(super) fn new(
        endpoint: Option<String>,
        runtime: &tokio::runtime::Runtime,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let url = endpoint
            .or_else(|| env("TRACES_ENDPOINT"))
            .or_else(|| env("ENDPOINT"))
            .unwrap_or_else(|| "http://localhost:4317".to_owned());
        let timeout = env("TRACES_TIMEOUT")
            .or_else(|| env("TIMEOUT"))
            .and_then(|ms| ms.trim().parse().ok())
            .map_or(Duration::from_secs(10), Duration::from_millis);
        let endpoint = Endpoint::from_shared(url)?
            .timeout(timeout)
            .connect_timeout(timeout);
        // The channel's connection lives on the export runtime.
        let channel = {
            let _entered = runtime.enter();
            endpoint.connect_lazy()
        };
        Ok(Self {
            client: Grpc::new(channel),
            headers: headers(
                &env("TRACES_HEADERS")
                    .or_else(|| env("HEADERS"))
                    .unwrap_or_default(),
            ),
            runtime: runtime.handle().clone(),
            resource: Resource::builder_empty().build(),
        })
    }
}

impl SpanExporter for GrpcExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let body = encode::export_request(&batch, &self.resource);
        drop(batch);
        let mut request = tonic::Request::new(body);
        *request.metadata_mut() = self.headers.clone();
        let mut client = self.client.clone();
        let call = async move {
            client
                .ready()
                .await
                .map_err(|e| format!("collector not reachable: {e}"))?;
            client
                .unary::<_, (), _>(request, PathAndQuery::from_static(EXPORT), Raw)
                .await
                .map(drop)
                .map_err(|status| format!("{:?}: {}", status.code(), status.message()))
        };
        // The batch processor's thread has no Tokio context: the call runs
        // on the export runtime, where the channel lives.
        match self.runtime.spawn(call).await {
            Ok(result) => result.map_err(OTelSdkError::InternalFailure),
            Err(e) => Err(OTelSdkError::InternalFailure(e.to_string())),
        }
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.clone();
    }
}

fn env(suffix: &str) -> Option<String> {
    std::env::var(format!("OTEL_EXPORTER_OTLP_{suffix}"))
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// `key=value,…` with percent-encoded values, as the specification writes
/// OTLP headers; a pair that is not a valid header is skipped, said once.
fn headers(text: &str) -> MetadataMap {
    let mut map = MetadataMap::new();
    for pair in text.split(',').filter(|p| !p.trim().is_empty()) {
        let parsed = pair.split_once('=').and_then(|(key, value)| {
            let key = MetadataKey::from_bytes(key.trim().to_ascii_lowercase().as_bytes()).ok()?;
            let value = MetadataValue::try_from(percent_decode(value.trim())?).ok()?;
            Some((key, value))
        });
        match parsed {
            Some((key, value)) => {
                map.insert(key, value);
            }
            None => eprintln!("OTLP header {pair:?} is not key=value with a valid name; skipped"),
        }
    }
    map
}

fn percent_decode(text: &str) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// Sends the encoded request as it is; the answer's contents (a partial
/// success, if any) are not read.
#[derive(Debug, Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = ();
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, Status> {
        src.advance(src.remaining());
        Ok(Some(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_parsed_as_the_specification_writes_them() {
        let map = headers("api-key=s%3Dcret, X-Tenant=blue,broken,=x");
        assert_eq!(map.get("api-key").unwrap(), "s=cret");
        assert_eq!(map.get("x-tenant").unwrap(), "blue");
        assert_eq!(map.len(), 2);
        assert_eq!(percent_decode("%zz"), None);
    }
}
