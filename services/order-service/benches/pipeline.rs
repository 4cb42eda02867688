//! What the reliability actors cost one order: the actor round-trips of the
//! pipeline, in µs, beside the latency of a whole order over loopback with
//! payment's simulated latency at 0. `make bench` runs it.
//!
//! The actors run on their own arbiter (thread) and are messaged from
//! another, as every HTTP worker but the first (which runs them) messages
//! them in the service.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Addr, Arbiter, Supervisor};
use actors::bulkhead::{self, Bulkhead, BulkheadConfig};
use actors::circuit_breaker::{self, BreakerConfig, CircuitBreaker, Outcome};
use actors::clock::{SharedClock, SystemClock};
use actors::idempotency::{
    IdempotencyConfig, IdempotencyStore, KeyLease, MemoryKeys, StoredResponse,
};
use tracing::Span;

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this
    // binary too, and then a few iterations show it still works.
    let orders = if std::env::args().any(|a| a == "--bench") {
        5_000
    } else {
        20
    };
    actix_rt::System::new().block_on(async {
        let actors = measure_actor_round_trips(orders).await;
        let (plain, keyed) = measure_orders(orders).await;
        println!("actor messages per keyed order (4 awaited, 2 sent): {actors:.1} µs");
        println!("whole order over loopback, no key:    {plain:.1} µs");
        println!("whole order over loopback, with key:  {keyed:.1} µs");
        println!(
            "actor share of a keyed order:         {:.0} %",
            actors / keyed * 100.0
        );
    });
}

type Actors = (
    Addr<CircuitBreaker>,
    Addr<Bulkhead>,
    Addr<IdempotencyStore<MemoryKeys>>,
);

/// The three actors on an order's path with default settings, on an arbiter of their own (as
/// in the service, where they run beside the workers).
async fn start_actors(arbiter: &Arbiter) -> Actors {
    let clock: SharedClock = Arc::new(SystemClock);
    let (tx, rx) = tokio::sync::oneshot::channel();
    arbiter.spawn(async move {
        let breaker = Supervisor::start(move |_| {
            CircuitBreaker::new(BreakerConfig::default(), clock.clone())
        });
        let bulkhead = Supervisor::start(|_| Bulkhead::new(BulkheadConfig::default()));
        let config = IdempotencyConfig::default();
        let keys = MemoryKeys::new(config, Arc::new(SystemClock));
        let store = Supervisor::start(move |_| IdempotencyStore::new(keys, config.sweep_every));
        let _ = tx.send((breaker, bulkhead, store));
    });
    rx.await.unwrap()
}

/// Per order: Reserve, Admit, Acquire and Complete awaited; Record and the
/// permit's release sent without waiting (as the service does).
async fn measure_actor_round_trips(orders: usize) -> f64 {
    let arbiter = Arbiter::new();
    let (breaker, bulkhead, store) = start_actors(&arbiter).await;

    let run = |n: usize, offset: usize| {
        let (breaker, bulkhead, store) = (breaker.clone(), bulkhead.clone(), store.clone());
        async move {
            let started = Instant::now();
            for i in offset..offset + n {
                let key = format!("bench-{i}");
                let (lease, reserved) = KeyLease::reserve(
                    &store,
                    key.clone(),
                    "f".into(),
                    "o".into(),
                    (),
                    Span::none(),
                )
                .await;
                reserved.unwrap();
                let mut lease = lease.unwrap();
                let pass = circuit_breaker::admit(&breaker, Span::none())
                    .await
                    .unwrap();
                let permit = bulkhead::acquire(&bulkhead, Duration::from_millis(250), Span::none())
                    .await
                    .unwrap();
                pass.record(Outcome::Success, Span::none());
                drop(permit);
                let response = StoredResponse {
                    status: 201,
                    headers: vec![],
                    body: vec![],
                };
                lease
                    .complete(response, (), Span::none())
                    .await
                    .unwrap()
                    .unwrap();
            }
            started.elapsed()
        }
    };
    run(orders / 10, 0).await; // warm-up
    let elapsed = run(orders, orders).await;
    arbiter.stop();
    elapsed.as_secs_f64() * 1e6 / orders as f64
}

/// Sequential orders against both real apps on loopback.
async fn measure_orders(orders: usize) -> (f64, f64) {
    let mut payment = payment_service::Config::defaults();
    payment.port = 0;
    payment.server.bind_addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    payment.validate_ms = 0;
    payment.gateway_ms = 0;
    payment.api_key = Some("bench-key".into());
    let payment = payment_service::Application::build(payment).unwrap();
    let payment_url = format!("http://127.0.0.1:{}", payment.port());
    actix_rt::spawn(payment.run_until_stopped());

    let mut order = order_service::Config::defaults();
    order.port = 0;
    order.server.bind_addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    order.payment_service_url = payment_url;
    order.payment_api_key = Some("bench-key".into());
    let order = order_service::Application::build(order).unwrap();
    let url = format!("http://127.0.0.1:{}/orders", order.port());
    actix_rt::spawn(order.run_until_stopped());

    let client = awc::Client::default();
    let body = r#"{"merchant_id":"bench","amount":12.34,"currency":"EUR"}"#;
    let run = |n: usize, keyed: bool, offset: usize| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let started = Instant::now();
            for i in offset..offset + n {
                let mut req = client
                    .post(&url)
                    .insert_header(("Content-Type", "application/json"));
                if keyed {
                    req = req.insert_header(("Idempotency-Key", format!("bench-order-{i}")));
                }
                let mut res = req.send_body(body).await.unwrap();
                assert_eq!(res.status(), 201);
                res.body().await.unwrap();
            }
            started.elapsed().as_secs_f64() * 1e6 / n as f64
        }
    };
    run(orders / 10, false, 0).await; // warm-up
    let plain = run(orders / 2, false, 0).await;
    let keyed = run(orders / 2, true, orders).await;
    (plain, keyed)
}
