//! A TCP link between order-service and one of its dependencies (the
//! database, payment-service) that fails on demand, the way a network or
//! a server fails:
//!
//! - [`Link::freeze`]: everything is held, both ways, on every connection
//!   (a server stopped with SIGSTOP, a host gone silent); [`Link::thaw`]
//!   delivers what was held — statements sent before, given up on by
//!   their client since, then reach the server and commit late.
//! - [`Link::silence_open`]: the connections open now hold everything
//!   forever; new ones work (a firewall dropping old flows).
//! - [`Link::crash`]: every connection is closed, and new ones are refused
//!   until [`Link::restart`] (a server killed, then started again). A
//!   statement forwarded just before may still commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Link {
    /// `127.0.0.1:<port>`: where order-service connects instead.
    pub address: String,
    state: Arc<State>,
}

struct State {
    upstream: String,
    accepted: AtomicUsize,
    /// Connections accepted before this number hold everything.
    silenced_before: AtomicUsize,
    frozen: watch::Sender<bool>,
    /// Bumped by each crash: connections of an older generation close.
    generation: watch::Sender<usize>,
    /// Crashed: the port is closed, and a connection is refused by the
    /// kernel, as by a server that is not running.
    down: watch::Sender<bool>,
    /// The local ports of the connections to the upstream, as the
    /// upstream sees its clients.
    upstream_ports: std::sync::Mutex<Vec<u16>>,
}

impl Link {
    /// A link to `upstream` (`host:port`) on a port of its own.
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let state = Arc::new(State {
            upstream: upstream.to_owned(),
            accepted: AtomicUsize::new(0),
            silenced_before: AtomicUsize::new(0),
            frozen: watch::channel(false).0,
            generation: watch::channel(0).0,
            down: watch::channel(false).0,
            upstream_ports: Default::default(),
        });
        tokio::spawn(serve(state.clone(), listener, address.clone()));
        Self { address, state }
    }

    /// `url` with its `upstream` replaced by this link.
    pub fn url(&self, url: &str) -> String {
        let via = url.replace(&self.state.upstream, &self.address);
        assert_ne!(via, url, "{url} does not name {}", self.state.upstream);
        via
    }

    pub fn freeze(&self) {
        self.state.frozen.send_replace(true);
    }

    pub fn thaw(&self) {
        self.state.frozen.send_replace(false);
    }

    /// Answers how many connections went silent.
    pub fn silence_open(&self) -> usize {
        let accepted = self.state.accepted.load(SeqCst);
        self.state.silenced_before.store(accepted, SeqCst);
        accepted
    }

    pub fn crash(&self) {
        self.state.down.send_replace(true);
        self.state.generation.send_modify(|g| *g += 1);
    }

    pub fn restart(&self) {
        self.state.down.send_replace(false);
    }

    /// The client ports the upstream has seen from this link, so far.
    pub fn upstream_ports(&self) -> Vec<u16> {
        self.state.upstream_ports.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.state.accepted.load(SeqCst)
    }
}

/// Accepts on `address` while up; closes the port while down.
async fn serve(state: Arc<State>, mut listener: TcpListener, address: String) {
    let mut down = state.down.subscribe();
    loop {
        let crashed = tokio::select! {
            accepted = listener.accept() => {
                if let Ok((client, _)) = accepted {
                    let id = state.accepted.fetch_add(1, SeqCst);
                    if let Ok(server) = TcpStream::connect(&state.upstream).await {
                        if let Ok(local) = server.local_addr() {
                            state.upstream_ports.lock().unwrap().push(local.port());
                        }
                        tokio::spawn(connect(state.clone(), id, client, server));
                    }
                }
                false
            }
            _ = async { down.wait_for(|down| *down).await.map(drop) } => true,
        };
        if crashed {
            drop(listener);
            if down.wait_for(|down| !*down).await.map(drop).is_err() {
                return;
            }
            listener = TcpListener::bind(&address).await.unwrap();
        }
    }
}

/// Pumps both ways until either side closes, or a crash closes both.
async fn connect(state: Arc<State>, id: usize, client: TcpStream, server: TcpStream) {
    let mut crashed = state.generation.subscribe();
    crashed.mark_unchanged();
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let pumps = async {
        tokio::join!(
            pump(&state, id, client_read, server_write),
            pump(&state, id, server_read, client_write),
        )
    };
    tokio::select! {
        _ = pumps => {}
        _ = crashed.changed() => {}
    }
}

async fn pump(
    state: &State,
    id: usize,
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
) {
    let mut frozen = state.frozen.subscribe();
    let generation = *state.generation.borrow();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if id < state.silenced_before.load(SeqCst) {
            std::future::pending::<()>().await;
        }
        // Held while frozen, delivered on the thaw — unless a crash came
        // first: then it is lost with the connection.
        if frozen.wait_for(|frozen| !frozen).await.map(drop).is_err()
            || *state.generation.borrow() != generation
        {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
