//! HTTP/1.1 on one socket, as much as loadgen's exchanges need: a request
//! written in one call from a reused buffer, an answer read into another
//! and framed by `Content-Length`, chunks or the close.
//!
//! Why not hyper here: on a cheap endpoint its client (dispatcher,
//! channels, header maps, body collection) cost loadgen ~9 µs of CPU per
//! request against wrk's ~1.5, and a load generator on a 2-core machine
//! takes those cycles from the server it measures. The breaker's event
//! stream still uses hyper: it is one long answer, not the hot path.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Failure;

/// What a request carries beyond its method and target.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub authority: &'a str,
    pub idempotency_key: Option<&'a str>,
    pub bearer: Option<&'a str>,
    pub json_body: Option<&'a [u8]>,
}

impl Request<'_> {
    /// The request's bytes, appended to `out`.
    fn encode(&self, out: &mut Vec<u8>) {
        let mut put = |parts: &[&[u8]]| parts.iter().for_each(|p| out.extend_from_slice(p));
        put(&[self.method.as_bytes(), b" ", self.path.as_bytes()]);
        put(&[b" HTTP/1.1\r\nhost: ", self.authority.as_bytes(), b"\r\n"]);
        if let Some(key) = self.idempotency_key {
            put(&[b"idempotency-key: ", key.as_bytes(), b"\r\n"]);
        }
        if let Some(token) = self.bearer {
            put(&[b"authorization: Bearer ", token.as_bytes(), b"\r\n"]);
        }
        if let Some(body) = self.json_body {
            let length = body.len().to_string();
            put(&[b"content-type: application/json\r\n"]);
            put(&[b"content-length: ", length.as_bytes(), b"\r\n\r\n", body]);
        } else if matches!(self.method, "GET" | "HEAD") {
            put(&[b"\r\n"]);
        } else {
            put(&[b"content-length: 0\r\n\r\n"]);
        }
    }
}

/// An answer whose body is `Socket::body()` until the next exchange.
pub struct Answer {
    pub status: u16,
    pub is_problem: bool,
}

/// A connected socket and the buffers it reuses.
pub struct Socket {
    stream: TcpStream,
    /// Bytes read and not yet taken; after an exchange, the answer's body.
    buf: Vec<u8>,
    body_len: usize,
    out: Vec<u8>,
    /// The server said it would close (or cannot frame another answer).
    closing: bool,
}

impl Socket {
    pub async fn connect(authority: &str) -> Result<Self, Failure> {
        let stream = TcpStream::connect(authority)
            .await
            .map_err(|e| Failure::from_io(&e))?;
        let _ = stream.set_nodelay(true);
        Ok(Self {
            stream,
            buf: Vec::with_capacity(4096),
            body_len: 0,
            out: Vec::with_capacity(512),
            closing: false,
        })
    }

    /// Whether another request may go on this socket: the server has not
    /// said or shown (an end of stream while idle) that it closed it.
    pub fn reusable(&self) -> bool {
        let mut probe = [0u8; 1];
        !self.closing
            && matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    pub fn body(&self) -> &[u8] {
        &self.buf[..self.body_len]
    }

    /// Sends `request` and reads its whole answer.
    pub async fn exchange(&mut self, request: &Request<'_>) -> Result<Answer, Failure> {
        self.out.clear();
        request.encode(&mut self.out);
        self.stream
            .write_all(&self.out)
            .await
            .map_err(|e| Failure::from_io(&e))?;
        self.buf.clear();
        self.body_len = 0;
        let head = loop {
            let head = self.read_head().await?;
            // 1xx answers (100 Continue) precede the real one.
            if !(100..200).contains(&head.status) {
                break head;
            }
            self.buf.drain(..head.len);
        };
        self.buf.drain(..head.len);
        self.closing |= !head.keep_alive;
        match head.framing {
            Framing::Length(n) => self.read_until(n).await?,
            Framing::Chunked => self.read_chunks().await?,
            Framing::UntilClose => {
                self.closing = true;
                while self.fill().await? {}
            }
        }
        self.body_len = match head.framing {
            Framing::Length(n) => {
                // Bytes past the answer: nothing after it can be framed.
                self.closing |= self.buf.len() > n;
                n
            }
            _ => self.buf.len(),
        };
        Ok(Answer {
            status: head.status,
            is_problem: head.is_problem,
        })
    }

    /// Reads more; `false` at the end of the stream.
    async fn fill(&mut self) -> Result<bool, Failure> {
        self.buf.reserve(4096);
        let n = self
            .stream
            .read_buf(&mut self.buf)
            .await
            .map_err(|e| Failure::from_io(&e))?;
        Ok(n > 0)
    }

    async fn read_until(&mut self, len: usize) -> Result<(), Failure> {
        while self.buf.len() < len {
            if !self.fill().await? {
                return Err(Failure::Reset);
            }
        }
        Ok(())
    }

    async fn read_head(&mut self) -> Result<Head, Failure> {
        loop {
            if let Some(head) = Head::parse(&self.buf)? {
                return Ok(head);
            }
            if !self.fill().await? {
                return Err(Failure::Reset);
            }
        }
    }

    /// Decodes a chunked body in place: afterwards `buf` holds its data.
    async fn read_chunks(&mut self) -> Result<(), Failure> {
        let (mut data_end, mut at) = (0, 0);
        loop {
            let line_end = loop {
                if let Some(i) = find_crlf(&self.buf[at..]) {
                    break at + i;
                }
                if !self.fill().await? {
                    return Err(Failure::Reset);
                }
            };
            let size = chunk_size(&self.buf[at..line_end]).ok_or(Failure::Other)?;
            at = line_end + 2;
            if size == 0 {
                // Trailers, if any, then the empty line.
                loop {
                    match find_crlf(&self.buf[at..]) {
                        Some(0) => break,
                        Some(i) => at += i + 2,
                        None if !self.fill().await? => return Err(Failure::Reset),
                        None => {}
                    }
                }
                self.buf.truncate(data_end);
                return Ok(());
            }
            self.read_until(at + size + 2).await?;
            self.buf.copy_within(at..at + size, data_end);
            data_end += size;
            at += size + 2;
        }
    }
}

enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

struct Head {
    /// Bytes of the status line and headers, blank line included.
    len: usize,
    status: u16,
    is_problem: bool,
    keep_alive: bool,
    framing: Framing,
}

impl Head {
    /// The head at the start of `buf`, once all of it is there.
    fn parse(buf: &[u8]) -> Result<Option<Self>, Failure> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let len = match response.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(Failure::Other),
        };
        let status = response.code.ok_or(Failure::Other)?;
        let mut keep_alive = response.version == Some(1);
        let (mut is_problem, mut length, mut chunked) = (false, None, false);
        for header in response.headers.iter() {
            let value = header.value;
            if header.name.eq_ignore_ascii_case("content-length") {
                let text = std::str::from_utf8(value).map_err(|_| Failure::Other)?;
                length = Some(text.trim().parse().map_err(|_| Failure::Other)?);
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case(b"chunked");
            } else if header.name.eq_ignore_ascii_case("content-type") {
                is_problem = value.starts_with(b"application/problem+json");
            } else if header.name.eq_ignore_ascii_case("connection") {
                keep_alive = if value.eq_ignore_ascii_case(b"close") {
                    false
                } else {
                    keep_alive || value.eq_ignore_ascii_case(b"keep-alive")
                };
            }
        }
        let framing = match (status, chunked, length) {
            (204 | 304, _, _) => Framing::Length(0),
            (_, true, _) => Framing::Chunked,
            (_, false, Some(n)) => Framing::Length(n),
            (_, false, None) => Framing::UntilClose,
        };
        Ok(Some(Self {
            len,
            status,
            is_problem,
            keep_alive,
            framing,
        }))
    }
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\r\n")
}

/// A chunk-size line's size (hex, extensions after `;` ignored).
fn chunk_size(line: &[u8]) -> Option<usize> {
    let hex = line.split(|&b| b == b';').next()?;
    let hex = std::str::from_utf8(hex).ok()?.trim();
    usize::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    /// A server on loopback that reads one request per answer and writes
    /// each answer in the slices given (to split heads and chunks across
    /// reads); it closes the socket after the last. Returns its address
    /// and, at the end, the requests it read.
    async fn serve(
        answers: Vec<Vec<&'static str>>,
    ) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut requests = Vec::new();
            for slices in answers {
                let mut request = vec![0u8; 4096];
                let n = stream.read(&mut request).await.unwrap();
                requests.push(String::from_utf8_lossy(&request[..n]).into_owned());
                for slice in slices {
                    stream.write_all(slice.as_bytes()).await.unwrap();
                    stream.flush().await.unwrap();
                    tokio::task::yield_now().await;
                }
            }
            requests
        });
        (address, task)
    }

    fn get(authority: &str) -> Request<'_> {
        Request {
            method: "GET",
            path: "/health",
            authority,
            idempotency_key: None,
            bearer: None,
            json_body: None,
        }
    }

    #[tokio::test]
    async fn a_post_is_written_with_its_key_and_body_and_two_answers_share_the_socket() {
        let answer = "HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}";
        let (address, server) = serve(vec![vec![answer], vec![answer]]).await;
        let mut socket = Socket::connect(&address).await.unwrap();
        let post = Request {
            method: "POST",
            path: "/orders",
            authority: &address,
            idempotency_key: Some("k-1"),
            bearer: Some("t"),
            json_body: Some(br#"{"amount":"1.00"}"#),
        };
        for _ in 0..2 {
            let answer = socket.exchange(&post).await.unwrap();
            assert_eq!((answer.status, socket.body()), (201, &b"{}"[..]));
        }
        let requests = server.await.unwrap();
        assert_eq!(
            requests[0],
            format!(
                "POST /orders HTTP/1.1\r\nhost: {address}\r\nidempotency-key: k-1\r\n\
                 authorization: Bearer t\r\ncontent-type: application/json\r\n\
                 content-length: 17\r\n\r\n{{\"amount\":\"1.00\"}}"
            )
        );
        assert_eq!(requests[0], requests[1]);
    }

    #[tokio::test]
    async fn a_chunked_problem_split_across_reads_is_decoded_whole() {
        let (address, _server) = serve(vec![vec![
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n",
            "transfer-encoding: chunked\r\n\r\n5;ext=1\r\nhel",
            "lo\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n",
            "\r\n",
        ]])
        .await;
        let mut socket = Socket::connect(&address).await.unwrap();
        let answer = socket.exchange(&get(&address)).await.unwrap();
        assert_eq!((answer.status, answer.is_problem), (503, true));
        assert_eq!(socket.body(), b"hello world");
    }

    #[tokio::test]
    async fn an_answer_without_length_ends_at_the_close_and_the_socket_is_not_reused() {
        let (address, _server) = serve(vec![vec![
            "HTTP/1.1 100 Continue\r\n\r\n",
            "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end",
        ]])
        .await;
        let mut socket = Socket::connect(&address).await.unwrap();
        let answer = socket.exchange(&get(&address)).await.unwrap();
        assert_eq!((answer.status, socket.body()), (200, &b"until the end"[..]));
        assert!(!socket.reusable());
    }

    #[tokio::test]
    async fn a_body_cut_short_is_a_reset_and_a_socket_closed_while_idle_is_not_reused() {
        let (address, server) =
            serve(vec![vec!["HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]]).await;
        let mut socket = Socket::connect(&address).await.unwrap();
        socket.exchange(&get(&address)).await.unwrap();
        server.await.unwrap();
        // The server's close has arrived by the time its task ends.
        assert!(!socket.reusable());

        let (address, _server) =
            serve(vec![vec!["HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nok"]]).await;
        let mut socket = Socket::connect(&address).await.unwrap();
        assert!(matches!(
            socket.exchange(&get(&address)).await,
            Err(Failure::Reset)
        ));
    }
}
