//! Who may place orders, and how fast. The breaker, the bulkhead and the
//! bounded queues shed load fairly for the system; this keeps one client
//! from taking the whole of it. Off by default, so the original's curl
//! examples work as they are:
//! - with CLIENT_KEYS ([`clients`]), `POST /orders` needs a client's key as
//!   `Authorization: Bearer`, and each client has a token bucket of its own;
//! - without it, RATE_LIMIT_PER_IP gives each client address a bucket (an
//!   IPv6 client its /64), the address read from `X-Forwarded-For` only
//!   when the peer is one of TRUSTED_PROXIES (anyone else could claim any
//!   address).
//!
//! A refusal comes before the body is read or a key reserved, so it creates
//! nothing and charges nothing (`charge: "none"`; `"unknown"` when the
//! request has an Idempotency-Key, whose earlier requests it did not look
//! up: `OrderError::before_key`). Every answer to a limited
//! client carries the IETF `RateLimit-Policy` and `RateLimit` headers, and a
//! 429 `Retry-After`. The buckets are this replica's: behind a balancer,
//! each replica lets a client in at its rate (docs/operations.md).

pub mod bucket;
pub mod clients;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError, web};
use actors::clock::SharedClock;
use clap::Args;
use common::body::{DEFAULT_LIMIT, read_body};
use common::headers::IDEMPOTENCY_KEY;
use dashmap::DashMap;
use prometheus::IntCounterVec;

use self::bucket::{Bucket, Decision, Rate};
use self::clients::ClientKeys;
use crate::error::{LimitError, OrderError, whole_seconds};

/// Addresses tracked at once; past it, a new address is let in without a
/// bucket until idle ones are forgotten (at most once a second): a sender
/// of that many addresses had that many buckets' worth anyway.
const MAX_ADDRESSES: usize = 100_000;

#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Clients and rate limits")]
pub struct LimitArgs {
    /// File of client keys, one `<key> <name> <rate>` per line (rate as
    /// 50/s, 600/min, or 50/s:100 with a burst). Set, POST /orders needs
    /// `Authorization: Bearer <key>` and each client has its own limit;
    /// unset, anyone may order.
    #[arg(long, env = "CLIENT_KEYS")]
    pub client_keys: Option<PathBuf>,

    /// Without CLIENT_KEYS: a limit on POST /orders per client address
    /// (20/s, 600/min, 20/s:40). Unset, none.
    #[arg(long, env = "RATE_LIMIT_PER_IP", conflicts_with = "client_keys")]
    pub rate_limit_per_ip: Option<Rate>,

    /// Proxies whose `X-Forwarded-For` is believed (comma-separated
    /// addresses, e.g. the replicas' nginx): the client is the last
    /// address they added. From any other peer, the peer's address.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpAddr>,
}

enum Gate {
    Open,
    Clients(ClientKeys),
    PerAddress {
        rate: Rate,
        buckets: DashMap<IpAddr, Bucket>,
        last_sweep: AtomicU64,
    },
}

/// The process's buckets, shared by its workers.
pub struct Limits {
    gate: Gate,
    trusted: Vec<IpAddr>,
    clock: SharedClock,
    epoch: Instant,
    /// Requests by client name and decision.
    admissions: IntCounterVec,
}

impl Limits {
    pub fn new(
        args: &LimitArgs,
        clock: SharedClock,
        admissions: IntCounterVec,
    ) -> std::io::Result<Self> {
        let gate = match (&args.client_keys, args.rate_limit_per_ip) {
            (Some(path), _) => Gate::Clients(
                ClientKeys::read(path)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
            ),
            (None, Some(rate)) => Gate::PerAddress {
                rate,
                buckets: DashMap::new(),
                last_sweep: AtomicU64::new(0),
            },
            (None, None) => Gate::Open,
        };
        if let Gate::Clients(keys) = &gate {
            // Every client's series exists from the start, at zero.
            for name in keys.names() {
                admissions.with_label_values(&[name, "admitted"]);
            }
        }
        let epoch = clock.now();
        Ok(Self {
            gate,
            trusted: args
                .trusted_proxies
                .iter()
                .map(|ip| ip.to_canonical())
                .collect(),
            clock,
            epoch,
            admissions,
        })
    }

    fn now(&self) -> u64 {
        self.clock
            .now()
            .saturating_duration_since(self.epoch)
            .as_nanos() as u64
    }

    /// Whom `req` is from, and what its bucket says; `None` when no limit
    /// applies.
    fn decide(&self, req: &ServiceRequest) -> Result<Option<Verdict<'_>>, LimitError> {
        let now = self.now();
        match &self.gate {
            Gate::Open => Ok(None),
            Gate::Clients(keys) => {
                let presented = common::auth::presented_token(req.headers());
                let Some(client) = presented.and_then(|key| keys.find(key)) else {
                    self.count("unknown", "unauthenticated");
                    return Err(LimitError::NoClientKey);
                };
                let decision = client.bucket.take(&client.rate, now);
                Ok(Some(Verdict::new(&client.name, client.rate, decision)))
            }
            Gate::PerAddress {
                rate,
                buckets,
                last_sweep,
            } => {
                let address = bucket_address(client_address(req, &self.trusted));
                let decision = match buckets.get(&address) {
                    Some(bucket) => bucket.take(rate, now),
                    None if buckets.len() < MAX_ADDRESSES || sweep(buckets, last_sweep, now) => {
                        buckets.entry(address).or_default().take(rate, now)
                    }
                    // No room: let it in untracked rather than share one
                    // bucket, where one sender of many addresses would
                    // lock every newcomer out (the attack on issue 30).
                    None => {
                        self.count("per-address", "untracked");
                        return Ok(None);
                    }
                };
                Ok(Some(Verdict::new("per-address", *rate, decision)))
            }
        }
    }

    fn count(&self, client: &str, decision: &str) {
        self.admissions.with_label_values(&[client, decision]).inc();
    }
}

/// Forgets the full buckets, at most once a second; whether there is
/// room now.
fn sweep(buckets: &DashMap<IpAddr, Bucket>, last: &AtomicU64, now: u64) -> bool {
    let previous = last.load(Ordering::Relaxed);
    let second = Duration::from_secs(1).as_nanos() as u64;
    if now.saturating_sub(previous) >= second
        && last
            .compare_exchange(previous, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        buckets.retain(|_, bucket| !bucket.is_full(now));
    }
    buckets.len() < MAX_ADDRESSES
}

/// The client's address as buckets are kept: IPv4 as it is (an IPv4
/// peer of a dual-stack listener included), IPv6 by its /64, which one
/// host usually holds whole.
fn bucket_address(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// One `X-Forwarded-For` hop: an address, or an address and a port
/// (`1.2.3.4:5`, `[2001:db8::1]:5`), as some balancers write them.
fn hop_address(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .map(|ip| ip.to_canonical())
}

/// The client's address: the peer's, or, from a trusted proxy, the last
/// address in `X-Forwarded-For` that is not itself a trusted proxy.
fn client_address(req: &ServiceRequest, trusted: &[IpAddr]) -> IpAddr {
    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_canonical())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|hop| !hop.is_empty())
        .collect::<Vec<_>>();
    for hop in forwarded.iter().rev() {
        match hop_address(hop) {
            Some(ip) if trusted.contains(&ip) => continue,
            Some(ip) => return ip,
            // Anything before a hop we cannot read could be forged.
            None => return peer,
        }
    }
    peer
}

/// One request's outcome, and the headers that tell the client.
struct Verdict<'a> {
    who: &'a str,
    rate: Rate,
    decision: Decision,
}

impl<'a> Verdict<'a> {
    fn new(who: &'a str, rate: Rate, decision: Decision) -> Self {
        Self {
            who,
            rate,
            decision,
        }
    }

    /// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
    fn headers(&self) -> [(HeaderName, HeaderValue); 2] {
        let (remaining, reset) = match self.decision {
            Decision::Admitted { remaining, reset } => (remaining, reset),
            Decision::Limited { retry_after } => (0, retry_after),
        };
        let policy = format!(
            "\"orders\";q={};w={}",
            self.rate.quota,
            whole_seconds(self.rate.window())
        );
        let now = format!("\"orders\";r={remaining};t={}", whole_seconds(reset));
        [
            (HeaderName::from_static("ratelimit-policy"), value(policy)),
            (HeaderName::from_static("ratelimit"), value(now)),
        ]
    }
}

fn value(text: String) -> HeaderValue {
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `req` with its body read and dropped (at most 16 KiB, within
/// BODY_TIMEOUT_MS), so that a refusal keeps the connection: an unread
/// body would close it, and a client refused thousands of times a second
/// would reconnect for each, filling both ends' socket tables (seen in
/// `make bench-clients`). A longer or slower body closes it as before.
async fn drained(mut req: ServiceRequest) -> ServiceRequest {
    let payload = req.take_payload();
    let _ = read_body(req.request(), payload, DEFAULT_LIMIT).await;
    req
}

/// Middleware for `POST /orders`: lets a request in, or answers 401/429.
pub async fn admit<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let limits = req.app_data::<web::Data<Limits>>().cloned();
    let Some(limits) = limits.filter(|_| req.method() == Method::POST) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let keyed = req.headers().contains_key(IDEMPOTENCY_KEY);
    let refuse = |req: ServiceRequest, refusal| {
        let response = OrderError::Edge(refusal).before_key(keyed).error_response();
        req.into_response(response).map_into_right_body()
    };
    let verdict = match limits.decide(&req) {
        Ok(None) => return Ok(next.call(req).await?.map_into_left_body()),
        Ok(Some(verdict)) => verdict,
        Err(refusal) => return Ok(refuse(drained(req).await, refusal)),
    };
    let headers = verdict.headers();
    let mut response = match verdict.decision {
        Decision::Admitted { .. } => {
            limits.count(verdict.who, "admitted");
            next.call(req).await?.map_into_left_body()
        }
        Decision::Limited { retry_after } => {
            limits.count(verdict.who, "limited");
            let limit = format!(
                "{} requests, one more every {:?}",
                verdict.rate.quota, verdict.rate.interval
            );
            let who = match verdict.who {
                "per-address" => "this address".to_owned(),
                name => format!("client {name}"),
            };
            let refusal = LimitError::Limited {
                who,
                limit,
                retry_after,
            };
            refuse(drained(req).await, refusal)
        }
    };
    for (name, value) in headers {
        response.headers_mut().insert(name, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_ipv4_peer_of_a_dual_stack_listener_is_its_ipv4_address_and_ipv6_goes_by_64() {
        assert_eq!(bucket_address(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
        assert_eq!(bucket_address(ip("10.0.0.1")), ip("10.0.0.1"));
        assert_eq!(
            bucket_address(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(
            bucket_address(ip("2001:db8:1:2::1")),
            bucket_address(ip("2001:db8:1:3::1"))
        );
    }

    #[test]
    fn forwarded_hops_are_read_with_or_without_a_port() {
        for (hop, expected) in [
            ("1.2.3.4", Some("1.2.3.4")),
            ("1.2.3.4:1000", Some("1.2.3.4")),
            ("[2001:db8::1]:443", Some("2001:db8::1")),
            ("2001:db8::1", Some("2001:db8::1")),
            ("::ffff:1.2.3.4", Some("1.2.3.4")),
            ("unknown", None),
            ("1.2.3.4:x", None),
        ] {
            assert_eq!(hop_address(hop), expected.map(ip), "{hop}");
        }
    }
}
