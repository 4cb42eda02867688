//! The breaker's state over a run, for the timeline's band and the live
//! progress line: either followed exactly on order-service's
//! `GET /admin/breaker/events` (`--breaker URL`), or read off the answers
//! (a bucket with a "Circuit breaker open" refusal was refused by an open
//! breaker).
//!
//! The stream is followed on its own connection beside the load and
//! reopened when it ends (order-service restarted mid-run): its first event
//! is always the current state, so a reconnection loses nothing but the
//! time it took. Times are when each event arrived here, on the run's own
//! clock, not the server's.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::header::{ACCEPT, AUTHORIZATION, HOST};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

use crate::client::Target;

/// The `title` order-service gives an order its breaker refused.
pub const REFUSED_TITLE: &str = "Circuit breaker open";

/// From `at_ms` into the run, the breaker was in `state` (`closed`, `open`,
/// `half_open`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    pub at_ms: u64,
    pub state: String,
}

/// What the follower learned so far, shared with the progress line.
#[derive(Debug, Default)]
pub struct Followed {
    pub changes: Vec<StateChange>,
    /// Why the stream is not followed right now, if it is not.
    pub trouble: Option<String>,
}

impl Followed {
    pub fn current(&self) -> Option<&str> {
        self.changes.last().map(|c| c.state.as_str())
    }
}

/// Follows the stream at `order_url` until the task is aborted.
pub async fn follow(
    order_url: String,
    token: Option<String>,
    start: Instant,
    followed: Arc<Mutex<Followed>>,
) {
    let note = |trouble: Option<String>| {
        followed.lock().unwrap_or_else(|e| e.into_inner()).trouble = trouble;
    };
    loop {
        let outcome = stream(&order_url, token.as_deref(), |event| {
            let mut followed = followed.lock().unwrap_or_else(|e| e.into_inner());
            followed.trouble = None;
            let at_ms = start.elapsed().as_millis() as u64;
            if followed.current() != Some(event.as_str()) {
                followed.changes.push(StateChange {
                    at_ms,
                    state: event,
                });
            }
        })
        .await;
        note(Some(match outcome {
            Ok(()) => "the event stream ended; reconnecting".to_owned(),
            Err(e) => e,
        }));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One connection: calls `on_state` with the breaker's state after each
/// event, until the stream ends.
async fn stream(
    order_url: &str,
    token: Option<&str>,
    mut on_state: impl FnMut(String),
) -> Result<(), String> {
    let target = Target::parse(&format!(
        "{}/admin/breaker/events",
        order_url.trim_end_matches('/')
    ))?;
    let tcp = TcpStream::connect(&target.authority)
        .await
        .map_err(|e| format!("{}: {e}", target.authority))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut request = Request::get(target.path.as_str())
        .header(HOST, target.authority.as_str())
        .header(ACCEPT, "text/event-stream");
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!(
            "{order_url}/admin/breaker/events answered {} (is ADMIN_TOKEN right?)",
            response.status()
        ));
    }
    let mut body = response.into_body();
    let mut parser = Parser::default();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Some(data) = frame.data_ref() {
            for state in parser.push(data) {
                on_state(state);
            }
        }
    }
    Ok(())
}

/// Server-sent events, as order-service writes them: `event: NAME`, one
/// `data:` line of JSON, a blank line. Comments (`:` keep-alives) are
/// skipped.
#[derive(Default)]
struct Parser {
    pending: Vec<u8>,
}

impl Parser {
    /// The breaker's state after each complete event in `bytes`.
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut states = Vec::new();
        while let Some(end) = self.pending.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = self.pending.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&event);
            let data = text
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(str::trim_start)
                .collect::<Vec<_>>()
                .join("\n");
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&data) else {
                continue;
            };
            // `state` events carry the status; `transition` events the target.
            let state = json["status"]["state"].as_str().or(json["to"].as_str());
            if let Some(state) = state {
                states.push(state.to_owned());
            }
        }
        states
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_reads_are_parsed_whole() {
        let mut parser = Parser::default();
        let stream = concat!(
            "event: state\ndata: {\"status\":{\"state\":\"closed\"},\"at_ms\":1}\n\n",
            ": keep-alive\n\n",
            "event: transition\ndata: {\"from\":\"closed\",\"to\":\"open\",\"at_ms\":2}\n\n",
            "event: transition\ndata: {\"from\":\"open\",\"to\":\"half_open\"}\n\n",
        )
        .as_bytes();
        let mut states = Vec::new();
        for chunk in stream.chunks(7) {
            states.extend(parser.push(chunk));
        }
        assert_eq!(states, ["closed", "open", "half_open"]);
        assert!(parser.pending.is_empty());
    }
}
