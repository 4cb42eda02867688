//! A client that hangs up: it sends a request over a TCP connection of its
//! own, then resets the connection (SO_LINGER 0, then close: the server
//! reads a RST, as from a killed client or a proxy that gave up) once the
//! moment it was given has come. actix-web then drops the handler's future
//! wherever it waits.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// `POST /orders` to `base` (`http://host:port`), reset once `moment` is done.
pub async fn post_order_then_reset(
    base: &str,
    key: Option<&str>,
    body: &str,
    moment: impl Future<Output = ()>,
) {
    let key = key.map(|k| ("Idempotency-Key", k));
    post_order_with_headers_then_reset(base, key.as_slice(), body, moment).await;
}

/// As [`post_order_then_reset`], with these headers.
pub async fn post_order_with_headers_then_reset(
    base: &str,
    headers: &[(&str, &str)],
    body: &str,
    moment: impl Future<Output = ()>,
) {
    post_then_reset(base, "/orders", headers, body, moment).await;
}

/// A JSON `POST {path}` to `base`, reset once `moment` is done.
pub async fn post_then_reset(
    base: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    moment: impl Future<Output = ()>,
) {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.expect("connects");
    let headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         {headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("sent");
    moment.await;
    stream.set_zero_linger().expect("SO_LINGER 0");
    drop(stream);
}

/// A moment `after` from now, to the microsecond: yields rather than sleeps
/// (the timer's resolution is a millisecond), so other tasks go on.
pub async fn after(delay: Duration) {
    let until = Instant::now() + delay;
    while Instant::now() < until {
        tokio::task::yield_now().await;
    }
}
