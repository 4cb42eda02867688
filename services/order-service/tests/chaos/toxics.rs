//! A fault proxy in the manner of Toxiproxy, for the links order-service
//! uses: order-service → payment-service and each replica → PostgreSQL.
//! The chaos suite's network rows ([`crate::net`]) put one on a link and
//! add and remove toxics while clients buy.
//!
//! Not noxious (the Rust port of Toxiproxy's core): its 1.0 lacks
//! `reset_peer` and pins old versions of tokio and warp, a second copy of
//! the runtime in the build; a proxy this size is cheaper to own.
//!
//! The toxics keep Toxiproxy's names and meanings, on either stream
//! (`Upstream`: client → server; `Downstream`: server → client), each with
//! a toxicity (the chance that it applies to a connection, decided once
//! per connection and toxic): `latency` (+ `jitter`) per chunk,
//! `bandwidth` (KB/s), `slow_close` (the FIN held back), `timeout` (no
//! data passes; the connection is closed after `timeout`, never if zero),
//! `reset_peer` (an RST after `timeout`), `slicer` (chunks cut into slices
//! with a pause between) and `limit_data` (closed after so many bytes).
//!
//! One difference, on purpose: Toxiproxy's `timeout` drops the bytes it
//! stops, which TCP never does to a connection that stays open. Here they
//! are held, and delivered if the toxic is removed while the connection
//! lives, as the sender's retransmissions would deliver them when a
//! blackholed path heals: a statement sent into the blackhole can commit
//! late, after its client gave up on it.
//!
//! [`Proxy::vanish`] is the half-open connection: the peer is gone without
//! FIN or RST (a host powered off, a NAT entry lost), so the connections
//! open now never carry a byte again, while new ones reach the peer (it
//! came back). A proxy on loopback acknowledges every segment itself, so
//! the client's TCP keepalive and user timeout cannot see this; what
//! detects it here is the client's own deadline.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stream {
    /// Client → server: requests, statements.
    Upstream,
    /// Server → client: answers.
    Downstream,
}

#[derive(Clone, Debug)]
pub enum Toxic {
    Latency {
        latency: Duration,
        jitter: Duration,
    },
    /// KB (1,024 bytes) per second.
    Bandwidth {
        rate: u64,
    },
    SlowClose {
        delay: Duration,
    },
    /// Zero: never closed.
    Timeout {
        timeout: Duration,
    },
    ResetPeer {
        timeout: Duration,
    },
    Slicer {
        average_size: usize,
        size_variation: usize,
        delay: Duration,
    },
    LimitData {
        bytes: u64,
    },
}

#[derive(Clone)]
struct Installed {
    id: u64,
    name: String,
    stream: Stream,
    toxicity: f64,
    toxic: Toxic,
}

/// How a connection was ended by a toxic.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kill {
    Close,
    Reset,
}

pub struct Proxy {
    /// `127.0.0.1:<port>`: where the client connects instead.
    pub address: String,
    state: Arc<State>,
}

struct State {
    upstream: Mutex<String>,
    toxics: watch::Sender<Vec<Installed>>,
    next_toxic: AtomicU64,
    accepted: AtomicUsize,
    /// Connections accepted before this number have lost their peer.
    vanished_before: AtomicUsize,
    seed: u64,
    resets: AtomicUsize,
    closes: AtomicUsize,
}

impl Proxy {
    /// A proxy to `upstream` (`host:port`; see [`Self::set_upstream`]) on a
    /// port of its own; `seed` draws toxicity, jitter and slices.
    pub async fn start(upstream: &str, seed: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let state = Arc::new(State {
            upstream: Mutex::new(upstream.to_owned()),
            toxics: watch::channel(Vec::new()).0,
            next_toxic: AtomicU64::new(0),
            accepted: AtomicUsize::new(0),
            vanished_before: AtomicUsize::new(0),
            seed,
            resets: AtomicUsize::new(0),
            closes: AtomicUsize::new(0),
        });
        tokio::spawn(serve(state.clone(), listener));
        Self { address, state }
    }

    /// For a peer whose address is known only after the proxy's.
    pub fn set_upstream(&self, upstream: &str) {
        *self.state.upstream.lock().unwrap() = upstream.to_owned();
    }

    /// `url` with its upstream replaced by this proxy.
    pub fn url(&self, url: &str) -> String {
        let upstream = self.state.upstream.lock().unwrap().clone();
        let via = url.replace(&upstream, &self.address);
        assert_ne!(via, url, "{url} does not name {upstream}");
        via
    }

    pub fn add(&self, name: &str, stream: Stream, toxicity: f64, toxic: Toxic) {
        let installed = Installed {
            id: self.state.next_toxic.fetch_add(1, SeqCst),
            name: name.to_owned(),
            stream,
            toxicity,
            toxic,
        };
        self.state.toxics.send_modify(|t| t.push(installed));
    }

    /// Both streams, every connection.
    pub fn add_both(&self, name: &str, toxic: Toxic) {
        self.add(name, Stream::Upstream, 1.0, toxic.clone());
        self.add(name, Stream::Downstream, 1.0, toxic);
    }

    pub fn remove(&self, name: &str) {
        self.state
            .toxics
            .send_modify(|t| t.retain(|i| i.name != name));
    }

    /// The peer of every connection open now is gone without a word.
    pub fn vanish(&self) -> usize {
        let accepted = self.state.accepted.load(SeqCst);
        self.state.vanished_before.store(accepted, SeqCst);
        accepted
    }

    pub fn connections(&self) -> usize {
        self.state.accepted.load(SeqCst)
    }

    /// Connections ended by a toxic: reset, closed.
    pub fn kills(&self) -> (usize, usize) {
        (
            self.state.resets.load(SeqCst),
            self.state.closes.load(SeqCst),
        )
    }
}

async fn serve(state: Arc<State>, listener: TcpListener) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let id = state.accepted.fetch_add(1, SeqCst);
        let upstream = state.upstream.lock().unwrap().clone();
        let state = state.clone();
        tokio::spawn(async move {
            if let Ok(server) = TcpStream::connect(&upstream).await {
                connection(state, id, client, server).await;
            }
        });
    }
}

/// One client's connection, as the toxics see it.
struct Conn {
    id: usize,
    rng: Mutex<StdRng>,
    /// Per toxic: whether it applies (its toxicity, drawn once), and since
    /// when this connection has known of it.
    seen: Mutex<HashMap<u64, (bool, Instant)>>,
    kill: watch::Sender<Option<Kill>>,
}

impl Conn {
    /// The toxics on `stream` that apply to this connection.
    fn active(&self, toxics: &[Installed], stream: Stream) -> Vec<(Toxic, Instant)> {
        let mut seen = self.seen.lock().unwrap();
        toxics
            .iter()
            .filter(|t| t.stream == stream)
            .filter_map(|t| {
                let (applies, since) = *seen.entry(t.id).or_insert_with(|| {
                    let draw: f64 = self.rng.lock().unwrap().random();
                    (draw < t.toxicity, Instant::now())
                });
                applies.then(|| (t.toxic.clone(), since))
            })
            .collect()
    }

    fn draw(&self, below: u64) -> u64 {
        if below == 0 {
            return 0;
        }
        self.rng.lock().unwrap().random_range(0..below)
    }
}

async fn connection(state: Arc<State>, id: usize, mut client: TcpStream, mut server: TcpStream) {
    let conn = Conn {
        id,
        rng: Mutex::new(StdRng::seed_from_u64(state.seed ^ ((id as u64) << 20))),
        seen: Mutex::default(),
        kill: watch::channel(None).0,
    };
    let mut killed = conn.kill.subscribe();
    let kill = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let pumps = async {
            tokio::join!(
                pump(&state, &conn, Stream::Upstream, client_read, server_write),
                pump(&state, &conn, Stream::Downstream, server_read, client_write),
            )
        };
        tokio::select! {
            _ = pumps => None,
            kill = fired(&state, &conn) => Some(kill),
            kill = killed.wait_for(Option::is_some) => kill.ok().and_then(|k| *k),
        }
    };
    match kill {
        Some(Kill::Reset) => {
            state.resets.fetch_add(1, SeqCst);
            let _ = client.set_zero_linger();
            let _ = server.set_zero_linger();
        }
        Some(Kill::Close) => {
            state.closes.fetch_add(1, SeqCst);
        }
        None => {}
    }
}

/// The first `reset_peer`, or `timeout` with a duration, to come due on
/// this connection.
async fn fired(state: &State, conn: &Conn) -> Kill {
    let mut toxics = state.toxics.subscribe();
    loop {
        let installed = toxics.borrow_and_update().clone();
        let due = [Stream::Upstream, Stream::Downstream]
            .into_iter()
            .flat_map(|stream| conn.active(&installed, stream))
            .filter_map(|(toxic, since)| match toxic {
                Toxic::ResetPeer { timeout } => Some((since + timeout, Kill::Reset)),
                Toxic::Timeout { timeout } if !timeout.is_zero() => {
                    Some((since + timeout, Kill::Close))
                }
                _ => None,
            })
            .min_by_key(|(at, _)| *at);
        let at = due.map(|(at, _)| at);
        tokio::select! {
            () = async move {
                match at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => return due.map_or(Kill::Close, |(_, kill)| kill),
            changed = toxics.changed() => {
                if changed.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// Carries `stream` until its sender closes, through the toxics.
async fn pump(
    state: &State,
    conn: &Conn,
    stream: Stream,
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
) {
    let mut toxics = state.toxics.subscribe();
    let mut buf = vec![0u8; 16 * 1024];
    let mut sent = 0u64;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if conn.id < state.vanished_before.load(SeqCst) {
            std::future::pending::<()>().await;
        }
        held(conn, &mut toxics, stream).await;
        let active = conn.active(&toxics.borrow(), stream);
        let mut chunk = &buf[..n];
        for (toxic, _) in &active {
            match *toxic {
                Toxic::Latency { latency, jitter } => {
                    let jitter = jitter.as_micros() as i64;
                    let offset = conn.draw(2 * jitter as u64 + 1) as i64 - jitter;
                    let micros = (latency.as_micros() as i64 + offset).max(0);
                    tokio::time::sleep(Duration::from_micros(micros as u64)).await;
                }
                Toxic::Bandwidth { rate } => {
                    let secs = chunk.len() as f64 / (rate.max(1) * 1024) as f64;
                    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                }
                Toxic::LimitData { bytes } if sent + chunk.len() as u64 > bytes => {
                    chunk = &chunk[..bytes.saturating_sub(sent) as usize];
                    let _ = to.write_all(chunk).await;
                    conn.kill.send_replace(Some(Kill::Close));
                    std::future::pending::<()>().await;
                }
                _ => {}
            }
        }
        let sliced = active.iter().find_map(|(toxic, _)| match *toxic {
            Toxic::Slicer {
                average_size,
                size_variation,
                delay,
            } => Some((average_size, size_variation, delay)),
            _ => None,
        });
        let written = match sliced {
            Some(slicer) => write_sliced(conn, &mut to, chunk, slicer).await,
            None => to.write_all(chunk).await.is_ok(),
        };
        if !written {
            return;
        }
        sent += chunk.len() as u64;
    }
    let slow_close = conn
        .active(&toxics.borrow(), stream)
        .into_iter()
        .find_map(|(toxic, _)| match toxic {
            Toxic::SlowClose { delay } => Some(delay),
            _ => None,
        });
    if let Some(delay) = slow_close {
        tokio::time::sleep(delay).await;
    }
    let _ = to.shutdown().await;
}

/// Waits while a `timeout` toxic on `stream` applies to the connection.
async fn held(conn: &Conn, toxics: &mut watch::Receiver<Vec<Installed>>, stream: Stream) {
    loop {
        let blocked = conn
            .active(&toxics.borrow_and_update(), stream)
            .iter()
            .any(|(toxic, _)| matches!(toxic, Toxic::Timeout { .. }));
        if !blocked || toxics.changed().await.is_err() {
            return;
        }
    }
}

async fn write_sliced(
    conn: &Conn,
    to: &mut WriteHalf<'_>,
    mut chunk: &[u8],
    (average, variation, delay): (usize, usize, Duration),
) -> bool {
    while !chunk.is_empty() {
        let offset = conn.draw(2 * variation as u64 + 1) as i64 - variation as i64;
        let size = (average as i64 + offset).clamp(1, chunk.len() as i64) as usize;
        let (slice, rest) = chunk.split_at(size);
        if to.write_all(slice).await.is_err() {
            return false;
        }
        chunk = rest;
        if !chunk.is_empty() {
            tokio::time::sleep(delay).await;
        }
    }
    true
}

/// Each toxic against an echo server, through the proxy.
#[cfg(test)]
mod tests {
    use std::io::ErrorKind;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::time::{Instant, timeout};

    use super::{Proxy, Stream, Toxic};

    /// A proxy to a server that echoes each connection until its EOF.
    async fn echo() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = socket.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                    let _ = write.shutdown().await;
                });
            }
        });
        Proxy::start(&address, 7).await
    }

    async fn connect(proxy: &Proxy) -> TcpStream {
        TcpStream::connect(&proxy.address).await.unwrap()
    }

    /// Sends `bytes`, closes its side, and reads to the end.
    async fn round_trip(proxy: &Proxy, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut socket = connect(proxy).await;
        socket.write_all(bytes).await?;
        socket.shutdown().await?;
        let mut back = Vec::new();
        socket.read_to_end(&mut back).await?;
        Ok(back)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[actix_web::test]
    async fn latency_delays_each_answer_by_its_latency_within_its_jitter() {
        let proxy = echo().await;
        let latency = Toxic::Latency {
            latency: ms(150),
            jitter: ms(50),
        };
        proxy.add("slow", Stream::Downstream, 1.0, latency);
        let started = Instant::now();
        assert_eq!(round_trip(&proxy, b"ping").await.unwrap(), b"ping");
        assert!(started.elapsed() >= ms(100), "{:?}", started.elapsed());
    }

    #[actix_web::test]
    async fn timeout_holds_the_bytes_and_delivers_them_when_removed() {
        let proxy = echo().await;
        proxy.add(
            "hole",
            Stream::Upstream,
            1.0,
            Toxic::Timeout { timeout: ms(0) },
        );
        let mut socket = connect(&proxy).await;
        socket.write_all(b"held").await.unwrap();
        let mut buf = [0u8; 4];
        let early = timeout(ms(300), socket.read_exact(&mut buf)).await;
        assert!(early.is_err(), "bytes passed a blackhole");
        proxy.remove("hole");
        socket.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"held");
    }

    #[actix_web::test]
    async fn timeout_with_a_duration_closes_the_connection_then() {
        let proxy = echo().await;
        proxy.add(
            "hole",
            Stream::Upstream,
            1.0,
            Toxic::Timeout { timeout: ms(100) },
        );
        let mut socket = connect(&proxy).await;
        socket.write_all(b"lost").await.unwrap();
        let mut back = Vec::new();
        socket.read_to_end(&mut back).await.unwrap();
        assert!(back.is_empty(), "{back:?}");
        assert_eq!(proxy.kills(), (0, 1));
    }

    #[actix_web::test]
    async fn reset_peer_resets_the_connection() {
        let proxy = echo().await;
        proxy.add(
            "rst",
            Stream::Upstream,
            1.0,
            Toxic::ResetPeer { timeout: ms(50) },
        );
        let mut socket = connect(&proxy).await;
        let mut buf = [0u8; 1];
        let err = socket.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionReset);
        assert_eq!(proxy.kills(), (1, 0));
    }

    #[actix_web::test]
    async fn limit_data_closes_the_connection_after_so_many_bytes() {
        let proxy = echo().await;
        proxy.add(
            "limit",
            Stream::Downstream,
            1.0,
            Toxic::LimitData { bytes: 5 },
        );
        assert_eq!(round_trip(&proxy, b"0123456789").await.unwrap(), b"01234");
    }

    #[actix_web::test]
    async fn slices_at_a_bandwidth_deliver_every_byte_in_order() {
        let proxy = echo().await;
        let slicer = Toxic::Slicer {
            average_size: 64,
            size_variation: 32,
            delay: Duration::from_micros(100),
        };
        proxy.add("slices", Stream::Upstream, 1.0, slicer);
        proxy.add(
            "slow",
            Stream::Downstream,
            1.0,
            Toxic::Bandwidth { rate: 100 },
        );
        let bytes: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let started = Instant::now();
        assert_eq!(round_trip(&proxy, &bytes).await.unwrap(), bytes);
        // 20,000 bytes at 100 KB/s: about 0.2 s.
        assert!(started.elapsed() >= ms(150), "{:?}", started.elapsed());
    }

    #[actix_web::test]
    async fn slow_close_holds_the_fin_back() {
        let proxy = echo().await;
        proxy.add(
            "fin",
            Stream::Downstream,
            1.0,
            Toxic::SlowClose { delay: ms(300) },
        );
        let started = Instant::now();
        assert_eq!(round_trip(&proxy, b"bye").await.unwrap(), b"bye");
        assert!(started.elapsed() >= ms(300), "{:?}", started.elapsed());
    }

    #[actix_web::test]
    async fn vanish_silences_the_open_connections_and_not_new_ones() {
        let proxy = echo().await;
        let mut old = connect(&proxy).await;
        // The connection is the proxy's once it carried something.
        old.write_all(b"a").await.unwrap();
        let mut buf = [0u8; 1];
        old.read_exact(&mut buf).await.unwrap();
        assert_eq!(proxy.vanish(), 1);
        old.write_all(b"b").await.unwrap();
        assert!(timeout(ms(300), old.read(&mut buf)).await.is_err());
        assert_eq!(round_trip(&proxy, b"new").await.unwrap(), b"new");
    }

    #[actix_web::test]
    async fn toxicity_is_the_share_of_connections_a_toxic_applies_to() {
        let proxy = echo().await;
        proxy.add(
            "rst",
            Stream::Upstream,
            0.5,
            Toxic::ResetPeer { timeout: ms(0) },
        );
        let mut sockets = Vec::new();
        for _ in 0..40 {
            sockets.push(connect(&proxy).await);
        }
        let reads = sockets.iter_mut().map(|socket| async move {
            let mut buf = [0u8; 1];
            let read = timeout(ms(500), socket.read(&mut buf)).await;
            matches!(read, Ok(Err(e)) if e.kind() == ErrorKind::ConnectionReset)
        });
        let reset = futures_util::future::join_all(reads)
            .await
            .into_iter()
            .filter(|&reset| reset)
            .count();
        assert_eq!(proxy.kills().0, reset);
        assert!((8..=32).contains(&reset), "{reset} of 40 reset");
    }
}
