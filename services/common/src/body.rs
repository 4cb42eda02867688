//! Reading a JSON request body: content type first, then at most `limit`
//! bytes within the body timeout, then syntax. Each refusal is its own
//! problem (400 / 408 / 413), decided before any field is looked at, so a
//! bad body never half-creates anything.

use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::web::{Bytes, BytesMut, Payload};
use actix_web::{HttpMessage, HttpRequest};
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// The largest body either service reads (16 KiB).
pub const DEFAULT_LIMIT: usize = 16 * 1024;

/// How long a body may take to arrive (`BODY_TIMEOUT_MS`), as app data;
/// 5 s where an app sets none.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub std::time::Duration);

impl Default for BodyTimeout {
    fn default() -> Self {
        Self(std::time::Duration::from_secs(5))
    }
}

/// Reads the whole body of a JSON request, refusing wrong content types and
/// bodies over `limit` without buffering more than `limit` bytes.
pub async fn read_json_body(
    req: &HttpRequest,
    payload: Payload,
    limit: usize,
) -> Result<Bytes, Problem> {
    let is_json = req.mime_type().ok().flatten().is_some_and(|mime| {
        mime.type_() == "application"
            && (mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json"))
    });
    if !is_json {
        let found = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none");
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "unsupported-content-type",
            "Unsupported content type",
            format!("Content-Type must be application/json, got {found}"),
        ));
    }
    read_body(req, payload, limit).await
}

/// Reads the whole body, whatever its type: at most `limit` bytes (413
/// past it, declared or sent), within the body timeout (408).
pub async fn read_body<S>(req: &HttpRequest, mut payload: S, limit: usize) -> Result<Bytes, Problem>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Request body too large",
            format!("the body must be at most {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let timeout = req.app_data::<BodyTimeout>().copied().unwrap_or_default().0;
    let read = async {
        let mut body = BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
        while let Some(chunk) = payload.next().await {
            let chunk =
                chunk.map_err(|e| Problem::bad_request(format!("could not read the body: {e}")))?;
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    actix_web::rt::time::timeout(timeout, read)
        .await
        .unwrap_or_else(|_| {
            Err(Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                "Request body too slow",
                format!("the body must arrive within {} ms", timeout.as_millis()),
            ))
        })
}

/// A JSON request body of at most [`DEFAULT_LIMIT`] bytes, parsed into `T`:
/// what every handler of both services reads.
pub async fn json_body<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: Payload,
) -> Result<T, Problem> {
    let body = read_json_body(req, payload, DEFAULT_LIMIT).await?;
    parse_json(&body)
}

/// Parses the body's syntax and shape; serde's message names the line,
/// column and the offending field, which is what a client needs to fix it.
/// Every body either service takes is a JSON object: serde would also read
/// a struct from an array of its fields in order (`[]` was "no faults").
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "Malformed JSON",
            "the body must be a JSON object",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "Malformed JSON",
            e.to_string(),
        )
    })
}
