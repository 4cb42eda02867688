//! One HTTP/1.1 connection per virtual user, written and read by loadgen
//! itself (`wire`): no pool, no per-request allocation beyond the key, so
//! loadgen is not the bottleneck it measures.

mod wire;

use std::io;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use serde::{Deserialize, Serialize};

use wire::{Answer, Socket};

/// Where requests go, parsed once.
#[derive(Debug, Clone)]
pub struct Target {
    pub authority: String,
    pub path: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("{url}: no host"));
        }
        let authority = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            authority,
            path: path.to_owned(),
        })
    }
}

/// Why a request got no HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    Timeout,
    ConnectRefused,
    Reset,
    Other,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::ConnectRefused => "connect_refused",
            Self::Reset => "reset",
            Self::Other => "other_error",
        }
    }

    fn from_io(e: &io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => Self::ConnectRefused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => Self::Reset,
            _ => Self::Other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Response {
        status: u16,
        /// `order_id` of a JSON 2xx body or of a problem, when asked for.
        order_id: Option<String>,
        /// `title` of a problem+json error body.
        problem_title: Option<String>,
        /// `charge` of a problem+json error body: what the client may
        /// conclude about money (`none`, `unknown`).
        charge: Option<String>,
    },
    Failed(Failure),
}

/// What to send.
#[derive(Debug, Clone)]
pub struct Spec {
    pub method: Method,
    pub body: Option<Bytes>,
    pub want_order_id: bool,
    /// A client key (order-service's CLIENT_KEYS), sent as `Authorization: Bearer`.
    pub bearer: Option<String>,
}

#[derive(Default)]
pub struct Connection {
    socket: Option<Socket>,
}

impl Connection {
    /// Sends one request within `timeout` (connect included); a failed or
    /// timed-out connection is dropped and reopened by the next request.
    pub async fn send(
        &mut self,
        target: &Target,
        spec: &Spec,
        key: Option<&str>,
        timeout: Duration,
    ) -> Outcome {
        let request = wire::Request {
            method: spec.method.as_str(),
            path: &target.path,
            authority: &target.authority,
            idempotency_key: key,
            bearer: spec.bearer.as_deref(),
            json_body: spec.body.as_deref(),
        };
        let (Answer { status, is_problem }, body) =
            match self.exchange(target, &request, timeout).await {
                Ok(answer) => answer,
                Err(failure) => return Outcome::Failed(failure),
            };
        let answered = (200..300).contains(&status) || is_problem;
        let want_json = (answered && spec.want_order_id) || is_problem;
        let json = want_json
            .then(|| serde_json::from_slice::<serde_json::Value>(body).ok())
            .flatten();
        let field = |name: &str| {
            json.as_ref()
                .and_then(|v| v[name].as_str().map(str::to_owned))
        };
        Outcome::Response {
            status,
            order_id: (answered && spec.want_order_id)
                .then(|| field("order_id"))
                .flatten(),
            problem_title: is_problem.then(|| field("title")).flatten(),
            charge: is_problem.then(|| field("charge")).flatten(),
        }
    }

    /// GET `path` from `target`'s host on this connection, with
    /// `Authorization: Bearer <bearer>` if given: the status and the body
    /// as JSON (`Null` when it is not JSON).
    pub async fn get_json(
        &mut self,
        target: &Target,
        path: &str,
        bearer: Option<&str>,
        timeout: Duration,
    ) -> Result<(u16, serde_json::Value), String> {
        let request = wire::Request {
            method: "GET",
            path,
            authority: &target.authority,
            idempotency_key: None,
            bearer,
            json_body: None,
        };
        let (answer, body) = self
            .exchange(target, &request, timeout)
            .await
            .map_err(|failure| format!("GET {path}: {}", failure.as_str()))?;
        Ok((
            answer.status,
            serde_json::from_slice(body).unwrap_or(serde_json::Value::Null),
        ))
    }

    /// One request and its whole answer (and body) within `timeout`,
    /// connecting first if needed.
    async fn exchange(
        &mut self,
        target: &Target,
        request: &wire::Request<'_>,
        timeout: Duration,
    ) -> Result<(Answer, &[u8]), Failure> {
        if !self.socket.as_ref().is_some_and(Socket::reusable) {
            self.socket = None;
        }
        let socket = &mut self.socket;
        let exchange = async {
            if socket.is_none() {
                *socket = Some(Socket::connect(&target.authority).await?);
            }
            socket
                .as_mut()
                .expect("connected above")
                .exchange(request)
                .await
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(answer)) => Ok((answer, self.socket.as_ref().map_or(&[], Socket::body))),
            Ok(Err(failure)) => {
                self.socket = None;
                Err(failure)
            }
            Err(_) => {
                self.socket = None;
                Err(Failure::Timeout)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let t = Target::parse("http://localhost:8080/orders").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("localhost:8080", "/orders")
        );
        let t = Target::parse("http://order-service").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("order-service:80", "/")
        );
        assert!(Target::parse("https://x/").is_err());
    }
}
