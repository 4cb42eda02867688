//! One HTTP/1.1 connection per virtual user, driven by hyper directly: no
//! pool, no per-request allocation beyond the request itself, so loadgen is
//! not the bottleneck it measures.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

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

    fn from_hyper(e: &hyper::Error) -> Self {
        if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
            return Self::Reset;
        }
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            if let Some(io) = cause.downcast_ref::<io::Error>() {
                return Self::from_io(io);
            }
            source = cause.source();
        }
        Self::Other
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
}

#[derive(Default)]
pub struct Connection {
    sender: Option<SendRequest<Full<Bytes>>>,
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
        let mut request = Request::builder()
            .method(spec.method.clone())
            .uri(target.path.as_str())
            .header(HOST, target.authority.as_str());
        if spec.body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let Ok(request) = request.body(Full::new(spec.body.clone().unwrap_or_default())) else {
            return Outcome::Failed(Failure::Other);
        };
        let (status, is_problem, body) = match self.exchange(target, request, timeout).await {
            Ok(answer) => answer,
            Err(failure) => return Outcome::Failed(failure),
        };
        let json = |field: &str| {
            serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v[field].as_str().map(str::to_owned))
        };
        let answered = (200..300).contains(&status) || is_problem;
        Outcome::Response {
            status,
            order_id: (answered && spec.want_order_id)
                .then(|| json("order_id"))
                .flatten(),
            problem_title: is_problem.then(|| json("title")).flatten(),
            charge: is_problem.then(|| json("charge")).flatten(),
        }
    }

    /// GET `path` from `target`'s host on this connection: the status and
    /// the body as JSON (`Null` when it is not JSON).
    /// A GET, with `Authorization: Bearer <bearer>` if given.
    pub async fn get_json(
        &mut self,
        target: &Target,
        path: &str,
        bearer: Option<&str>,
        timeout: Duration,
    ) -> Result<(u16, serde_json::Value), String> {
        let mut request = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(HOST, target.authority.as_str());
        if let Some(token) = bearer {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let (status, _, body) = self
            .exchange(target, request, timeout)
            .await
            .map_err(|failure| format!("GET {path}: {}", failure.as_str()))?;
        Ok((
            status,
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        ))
    }

    /// One request and its whole answer (status, whether it is
    /// problem+json, body) within `timeout`, connecting first if needed.
    async fn exchange(
        &mut self,
        target: &Target,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<(u16, bool, Bytes), Failure> {
        let exchange = async {
            if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
                self.sender = Some(connect(target).await?);
            }
            let sender = self.sender.as_mut().expect("connected above");
            sender.ready().await.map_err(|e| Failure::from_hyper(&e))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| Failure::from_hyper(&e))?;
            let status = response.status().as_u16();
            let is_problem = response
                .headers()
                .get(CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| Failure::from_hyper(&e))?
                .to_bytes();
            Ok((status, is_problem, body))
        };
        let answer = tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(Failure::Timeout));
        if answer.is_err() {
            self.sender = None;
        }
        answer
    }
}

async fn connect(target: &Target) -> Result<SendRequest<Full<Bytes>>, Failure> {
    let stream = TcpStream::connect(&target.authority)
        .await
        .map_err(|e| Failure::from_io(&e))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Failure::from_hyper(&e))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// GET a JSON document that must be there (the payment ledger for the
/// audit).
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
