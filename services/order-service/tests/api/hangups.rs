//! Clients that hang up (a TCP reset) at every phase of an order: before
//! and during the key's reservation, during the payment attempt, during a
//! half-open trial, while the order is recorded and while it is settled.
//! After each, once quiet: the order is settled as if the client had
//! waited (docs/contract.md §5), no key stays in flight, the breaker is not wedged,
//! and payment's ledger has exactly one charge per completed order.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use actors::bulkhead::GetStatus;
use actors::circuit_breaker::{Mode, SetMode, State};
use actors::clock::SystemClock;
use common::domain::OrderId;
use order_service::domain::OrderStatus;
use order_service::store::{MemoryStore, OrderStore};
use serde_json::{Value, json};
use tracing::Span;

use crate::gated::{Gate, GatedStore};
use crate::hangup::{after, post_order_then_reset, post_then_reset};
use crate::helpers::{
    TestApp, eventually, memory_store, order_body, order_config, payment_at_its_latencies,
    payment_config, spawn_app_with, spawn_app_with_store,
};

fn body() -> String {
    order_body().to_string()
}

/// Resolves once payment-service has received `n` charge requests.
async fn payment_received(app: &TestApp, n: u64) {
    eventually("payment received the charge", || async {
        app.payment_requests().await >= n
    })
    .await;
}

/// The only order charged so far, once its status is `status`.
async fn the_charged_order(app: &TestApp, status: &str) -> Value {
    let order = RefCell::new(Value::Null);
    eventually("the charged order settles", || async {
        let entries = app.ledger_entries().await;
        let [charge] = entries.as_slice() else {
            return false;
        };
        let id = charge["order_id"].as_str().unwrap();
        let found = app.get(&format!("/orders/{id}")).await.body;
        let settled =
            found["status"] == status && found["transaction_id"] == charge["transaction_id"];
        *order.borrow_mut() = found;
        settled
    })
    .await;
    order.into_inner()
}

/// Nothing left in flight: no key held, no order tracked by the reconciler.
async fn quiet(app: &TestApp) {
    eventually("no key in flight and no order tracked", || async {
        app.keys_in_flight().await == 0 && app.tracked().await == 0
    })
    .await;
}

/// `POST /orders` by a client that waits, while the test goes on; the
/// status and body it got.
fn slow_payment(delay_ms: u64) -> payment_service::Config {
    let mut payment = payment_config();
    payment.faults.delay_ms = delay_ms;
    payment
}

#[actix_web::test]
async fn a_hang_up_during_the_payment_attempt_still_completes_the_order() {
    let app = spawn_app_with(order_config(), slow_payment(300));
    post_order_then_reset(&app.address, None, &body(), payment_received(&app, 1)).await;

    the_charged_order(&app, "completed").await;
    quiet(&app).await;
    assert_eq!(app.charges().await, 1);
}

#[actix_web::test]
async fn a_keyed_hang_up_during_the_payment_attempt_completes_the_order_and_its_key() {
    let app = spawn_app_with(order_config(), slow_payment(300));
    post_order_then_reset(
        &app.address,
        Some("reset-k"),
        &body(),
        payment_received(&app, 1),
    )
    .await;

    let order = the_charged_order(&app, "completed").await;
    quiet(&app).await;
    let retry = app.post_order_with_key("reset-k", &order_body()).await;
    assert_eq!(retry.status, 201, "{}", retry.body);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.body["order_id"], order["order_id"]);
    assert_eq!(retry.body["transaction_id"], order["transaction_id"]);
    assert_eq!(app.charges().await, 1);
}

/// Resets swept across the whole life of a keyed order, 25 µs apart: some
/// land before the request is read, some while its key is reserved, some
/// during the payment call, some while it settles.
#[actix_web::test]
async fn hang_ups_at_every_moment_of_a_keyed_order_leave_no_key_in_flight() {
    let app = spawn_app_with(order_config(), slow_payment(2));
    let keys: Vec<String> = (0..200).map(|i| format!("sweep-{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        let moment = after(Duration::from_micros(25 * i as u64));
        post_order_then_reset(&app.address, Some(key), &body(), moment).await;
    }
    quiet(&app).await;

    // Every key answers now (none is stuck at 409), and every order that
    // any of them created was charged exactly once.
    let mut completed = std::collections::HashMap::new();
    for key in &keys {
        let retry = app.post_order_with_key(key, &order_body()).await;
        assert_eq!(retry.status, 201, "{key}: {}", retry.body);
        let id = retry.body["order_id"].as_str().unwrap().to_owned();
        completed.insert(id, retry.body["transaction_id"].clone());
    }
    let entries = app.ledger_entries().await;
    assert_eq!(entries.len(), keys.len(), "one charge per key");
    for charge in &entries {
        let id = charge["order_id"].as_str().unwrap();
        assert_eq!(completed.get(id), Some(&charge["transaction_id"]), "{id}");
    }
    assert_eq!(app.keys_in_flight().await, 0);
}

#[actix_web::test]
async fn a_hang_up_during_a_half_open_trial_does_not_wedge_the_breaker() {
    let mut order = order_config();
    order.breaker.consecutive_failures = 1;
    order.breaker.open_ms = 200;
    order.breaker.half_open_calls = 1;
    order.retry.max_attempts = 1;
    let mut payment = payment_config();
    payment.faults.error_pct = 100;
    let app = spawn_app_with(order, payment);
    app.post_order(&order_body()).await.assert_problem(502);
    assert_eq!(app.breaker().await.state, State::Open);

    app.set_faults(json!({"delay_ms": 300})).await;
    eventually("the breaker is due to probe", || async {
        app.breaker().await.next_probe_in_ms == Some(0)
    })
    .await;
    let sent = app.payment_requests().await;
    post_order_then_reset(&app.address, Some("trial"), &body(), async {
        payment_received(&app, sent + 1).await;
        assert_eq!(app.breaker().await.state, State::HalfOpen);
    })
    .await;

    eventually("the trial's success closes the breaker", || async {
        app.breaker().await.state == State::Closed
    })
    .await;
    app.set_faults(json!({})).await;
    assert_eq!(app.post_order(&order_body()).await.status, 201);
    // The trial's order completed for the client who left.
    let trial = app.post_order_with_key("trial", &order_body()).await;
    assert_eq!(trial.status, 201, "{}", trial.body);
    assert_eq!(trial.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.keys_in_flight().await, 0);
}

#[actix_web::test]
async fn a_hang_up_while_the_order_is_recorded_or_settled_loses_nothing() {
    for gate in [Gate::Insert, Gate::Update] {
        let store = GatedStore::new(gate, &order_config());
        let app = spawn_app_with_store(order_config(), payment_config(), store.clone());
        post_order_then_reset(
            &app.address,
            Some("gated"),
            &body(),
            store.reached.notified(),
        )
        .await;
        // The client is gone; the flow is parked in the store. Let it go on.
        store.open();

        let order = the_charged_order(&app, "completed").await;
        quiet(&app).await;
        let retry = app.post_order_with_key("gated", &order_body()).await;
        assert_eq!(
            (retry.status.as_u16(), &retry.body["order_id"]),
            (201, &order["order_id"]),
            "{gate:?}"
        );
        assert_eq!(app.charges().await, 1, "{gate:?}");
    }
}

/// The order's first flow charged it and then stalled before settling; its
/// key's lease runs out and the client's retry takes the key over — and
/// meets an open breaker. The retry must not call the order failed (a
/// charge exists), and the stalled flow, when it settles, must not be
/// undone by the retry's copy.
#[actix_web::test]
async fn a_takeover_that_meets_an_open_breaker_keeps_a_charged_order_pending() {
    let mut config = order_config();
    config.idempotency.lease_ms = 1000;
    let store = GatedStore::new(Gate::Update, &config);
    let app = spawn_app_with_store(config, payment_config(), store.clone());
    let stalled = app.post_order_in_background(Some("taken-over"), &order_body());
    store.reached.notified().await;
    assert_eq!(app.charges().await, 1);

    app.reliability
        .pipeline
        .breaker
        .send(SetMode {
            mode: Mode::ForcedOpen,
            span: Span::none(),
        })
        .await
        .unwrap()
        .unwrap();
    let retry = RefCell::new(None);
    eventually("the stalled holder's lease runs out", || async {
        let reply = app.post_order_with_key("taken-over", &order_body()).await;
        let done = reply.body["type"] != "urn:reliable-orders:problem:idempotency-key-in-flight";
        *retry.borrow_mut() = Some(reply);
        done
    })
    .await;
    let retry = retry.into_inner().unwrap();
    // Refused now, but charged before: not "nothing charged", not a 503.
    retry.assert_problem(409);
    assert_eq!(
        retry.body["type"], "urn:reliable-orders:problem:order-pending",
        "{}",
        retry.body
    );
    assert_eq!(retry.body["charge"], "unknown");
    let id = retry.body["order_id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get(&format!("/orders/{id}")).await.body["status"],
        "pending"
    );

    store.open();
    assert_eq!(stalled.await.unwrap().status, 201);
    let order = the_charged_order(&app, "completed").await;
    assert_eq!(order["order_id"], id.as_str());
    let replay = app.post_order_with_key("taken-over", &order_body()).await;
    assert_eq!(replay.status, 201, "{}", replay.body);
    assert_eq!(replay.body["transaction_id"], order["transaction_id"]);
    assert_eq!(app.charges().await, 1);
}

/// A writer that learned less, later: the order's first flow timed out
/// (its answer: still pending) and stalled before writing that, while the
/// reconciler charged and completed the order. The stale "pending" must
/// not land on top of "completed".
#[actix_web::test]
async fn a_slow_writer_never_moves_a_completed_order_back() {
    let mut config = order_config();
    config.reconciler.interval_ms = 50;
    let store = GatedStore::new(Gate::Update, &config);
    let app = spawn_app_with_store(config, slow_payment(600), store.clone());
    let stalled = app.post_order_in_background(None, &order_body());
    store.reached.notified().await;
    app.set_faults(json!({})).await;

    // The reconciler takes the order over once the first flow's hold ends.
    let completed = the_charged_order(&app, "completed").await;
    store.open();
    let stalled = stalled.await.unwrap();
    assert_eq!(
        stalled.status, 201,
        "the order completed meanwhile: {}",
        stalled.body
    );
    assert_eq!(stalled.body["transaction_id"], completed["transaction_id"]);
    let id = completed["order_id"].as_str().unwrap();
    let now = app.get(&format!("/orders/{id}")).await.body;
    assert_eq!(now["status"], "completed", "{now}");
    assert_eq!(now["transaction_id"], completed["transaction_id"]);
    quiet(&app).await;
    assert_eq!(app.charges().await, 1);
}

/// The first flow's call was refused (breaker open: nothing reached
/// payment) and it stalled before writing `failed`; meanwhile the
/// reconciler took the order into a call of its own that charges it. The
/// late `failed` must not land: the charge would belong to a failed order.
#[actix_web::test]
async fn a_late_refusal_cannot_fail_an_order_another_flow_is_charging() {
    let mut config = order_config();
    config.reconciler.interval_ms = 50;
    let store = GatedStore::new(Gate::Update, &config);
    let app = spawn_app_with_store(config, slow_payment(300), store.clone());
    let set_mode = |mode| {
        app.reliability.pipeline.breaker.send(SetMode {
            mode,
            span: Span::none(),
        })
    };
    set_mode(Mode::ForcedOpen).await.unwrap().unwrap();
    let refused = app.post_order_in_background(None, &order_body());
    store.reached.notified().await;
    set_mode(Mode::Auto).await.unwrap().unwrap();
    // The reconciler's call is at payment: only now may the refusal land.
    payment_received(&app, 1).await;
    store.open();

    // The refused flow answers what it knows now: pending, maybe charged.
    let refused = refused.await.unwrap();
    refused.assert_problem(409);
    assert_eq!(
        refused.body["type"],
        "urn:reliable-orders:problem:order-pending"
    );
    assert_eq!(refused.body["charge"], "unknown");
    let order = the_charged_order(&app, "completed").await;
    assert_eq!(refused.body["order_id"], order["order_id"]);
    quiet(&app).await;
    assert_eq!(app.charges().await, 1);
}

/// order-service over `store`, paying through a payment-service 400 ms
/// slow, and served until `stop` is sent: a shutdown amid orders.
struct Stoppable {
    app: TestApp,
    payment: actix_web::dev::ServerHandle,
    stop: tokio::sync::oneshot::Sender<()>,
    served: actix_rt::task::JoinHandle<std::io::Result<()>>,
}

fn stoppable(mut config: order_service::Config, store: Arc<MemoryStore>) -> Stoppable {
    observability::init_for_tests();
    let payment = payment_service::Application::build(slow_payment(400)).unwrap();
    let payment_address = format!("http://127.0.0.1:{}", payment.port());
    let payment_handle = payment.handle();
    actix_rt::spawn(payment.run_until_stopped());
    config.payment_service_url = payment_address.clone();
    let order = order_service::Application::build_with(
        config,
        store as Arc<dyn OrderStore>,
        Arc::new(SystemClock),
    )
    .unwrap();
    let app = TestApp {
        address: format!("http://127.0.0.1:{}", order.port()),
        reliability: order.reliability().clone(),
        payment_address,
        client: awc::Client::default(),
        handles: vec![payment_handle.clone()],
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = actix_rt::spawn(order.run_until(async {
        let _ = stopped.await;
    }));
    Stoppable {
        app,
        payment: payment_handle,
        stop,
        served,
    }
}

/// SIGTERM's graceful shutdown waits for connections; a flow whose client
/// hung up holds none. It must still be let finish.
#[actix_web::test]
async fn a_shutdown_lets_the_orders_of_clients_that_hung_up_finish() {
    let mut config = order_config();
    config.server.shutdown_timeout_secs = 5;
    let store = Arc::new(memory_store(&config));
    let Stoppable {
        app,
        payment: payment_handle,
        stop,
        served,
    } = stoppable(config, store.clone());

    for n in 1..=4 {
        post_order_then_reset(&app.address, None, &body(), payment_received(&app, n)).await;
    }
    stop.send(()).unwrap();
    served.await.unwrap().unwrap();

    // The server is gone; its store says how the four orders ended.
    let entries = app.ledger_entries().await;
    assert_eq!(entries.len(), 4);
    for charge in entries {
        let id = OrderId::parse(charge["order_id"].as_str().unwrap()).unwrap();
        let order = store.get(id).await.unwrap().expect("the order exists");
        assert_eq!(order.status, OrderStatus::Completed, "{order:?}");
        assert_eq!(
            order.transaction_id.as_deref(),
            charge["transaction_id"].as_str()
        );
    }
    payment_handle.stop(true).await;
}

/// While shutting down, an order is refused before its key is read. The
/// key may name an order charged before, so the answer to a keyed request
/// is "unknown, retry with the key" (on another replica, or later), never
/// "nothing charged".
#[actix_web::test]
async fn a_keyed_request_refused_while_shutting_down_never_says_nothing_was_charged() {
    let Stoppable {
        app,
        payment: payment_handle,
        stop,
        served,
    } = stoppable(order_config(), Arc::new(memory_store(&order_config())));
    let paid = app.post_order_with_key("paid-before", &order_body()).await;
    assert_eq!(paid.status, 201);
    // An order in flight holds the shutdown open while the test asks.
    let in_flight = app.post_order_in_background(None, &order_body());
    payment_received(&app, 2).await;
    stop.send(()).unwrap();
    let refused = RefCell::new(None);
    // Asked on the open keep-alive connection, until the drain refuses.
    eventually("the shutdown refuses new orders", || async {
        let reply = app.post_order_with_key("paid-before", &order_body()).await;
        let done = reply.status == 503;
        *refused.borrow_mut() = Some(reply);
        done
    })
    .await;
    let refused = refused.into_inner().unwrap();
    assert_eq!(refused.body["charge"], "unknown", "{}", refused.body);
    assert!(refused.header("retry-after").is_some());
    assert_eq!(in_flight.await.unwrap().status, 201);
    served.await.unwrap().unwrap();
    payment_handle.stop(true).await;
}

/// Each key retried once, after its first request's client hung up: the
/// orders the retries made (201). Any other answer must say the key was
/// spent, never that it is still in flight.
async fn retry_each_key(app: &TestApp, keys: &[String]) -> u64 {
    let mut created = 0;
    for key in keys {
        let reply = app.post_order_with_key(key, &order_body()).await;
        match reply.status.as_u16() {
            201 => created += 1,
            _ => assert_eq!(
                reply.body["type"], "urn:reliable-orders:problem:idempotency-key-spent",
                "{}",
                reply.body
            ),
        }
    }
    created
}

/// A keyed order refused with the breaker open (its key spent), its client
/// gone at every moment from the request's arrival to the refusal: no key
/// stays in flight, nothing is tracked, nothing reached payment; once the
/// breaker closes, a key the refusal spent says so, and a key it never
/// reached makes its order, charged once.
#[actix_web::test]
async fn hang_ups_during_a_refusal_leave_no_key_in_flight_and_nothing_tracked() {
    let app = spawn_app_with(order_config(), payment_config());
    app.set_breaker(Mode::ForcedOpen).await;
    let keys: Vec<String> = (0..40).map(|i| format!("refused-reset-{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        let delay = Duration::from_micros(i as u64 * 25);
        post_order_then_reset(&app.address, Some(key), &body(), after(delay)).await;
    }
    quiet(&app).await;
    assert_eq!(app.payment_requests().await, 0);
    app.set_breaker(Mode::Auto).await;
    let created = retry_each_key(&app, &keys).await;
    assert_eq!(app.charges().await, created);
}

/// Keyed orders queued for a single bulkhead permit, their clients gone
/// at moments 0 to 300 ms after sending: some while they wait, some as the
/// queue that failed them sheds or cuts their waits, some as a permit is
/// handed over, some during the call. The flow is a task of its own, so
/// none of its awaits is cancelled; once quiet no key is in flight, nothing
/// is tracked, every permit is back and nobody waits; and a retry under
/// each key replays its order or says it was spent, one charge per 201.
#[actix_web::test]
async fn hang_ups_while_waiting_for_a_bulkhead_permit_leave_no_key_no_permit_and_no_extra_charge() {
    let mut order = order_config();
    order.bulkhead.max = 1;
    let payment = payment_at_its_latencies();
    let app = spawn_app_with(order, payment);
    let keys: Vec<String> = (0..60).map(|i| format!("queued-reset-{i}")).collect();
    let body = body();
    let resets = keys.iter().enumerate().map(|(i, key)| {
        let moment = after(Duration::from_millis(i as u64 * 5));
        post_order_then_reset(&app.address, Some(key), &body, moment)
    });
    futures_util::future::join_all(resets).await;
    quiet(&app).await;
    let bulkhead = &app.reliability.pipeline.bulkhead;
    eventually("every permit back, nobody waiting", || async {
        let status = bulkhead.send(GetStatus).await.unwrap().unwrap();
        status.in_use == 0 && status.waiting == 0
    })
    .await;
    let created = retry_each_key(&app, &keys).await;
    assert!(created < keys.len() as u64, "the bulkhead refused some");
    assert_eq!(app.charges().await, created);
}

/// payment's group commit with its callers gone: each charge's connection
/// is reset at a moment from its arrival to past its sync. The charge
/// queued for the writer is written all the same; a retry under its key
/// replays it or makes it, and no key is ever charged twice.
#[actix_web::test]
async fn hang_ups_while_payment_syncs_a_charge_charge_each_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut payment = payment_config();
    payment.ledger_path = Some(dir.path().join("ledger.jsonl"));
    let app = spawn_app_with(order_config(), payment);
    let authorization = format!("Bearer {}", crate::helpers::PAYMENT_API_KEY);
    let keys: Vec<String> = (0..60).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let charge = |key: &str| {
        format!(r#"{{"order_id":"{key}","merchant_id":"m","amount":1.00,"currency":"USD"}}"#)
    };
    for (i, key) in keys.iter().enumerate() {
        let headers = [
            ("Authorization", authorization.as_str()),
            ("Idempotency-Key", key.as_str()),
        ];
        let delay = Duration::from_micros(i as u64 * 50);
        post_then_reset(
            &app.payment_address,
            "/charge",
            &headers,
            &charge(key),
            after(delay),
        )
        .await;
    }
    for key in &keys {
        let req = app
            .client
            .post(format!("{}/charge", app.payment_address))
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("Authorization", authorization.as_str()))
            .insert_header(("Idempotency-Key", key.as_str()));
        let reply = app.send(req, Some(charge(key))).await;
        assert!(matches!(reply.status.as_u16(), 200 | 201), "{}", reply.body);
    }
    let audit = app.get_payment("/ledger").await.body;
    assert_eq!(audit["charges"], keys.len());
    assert_eq!(audit["keys"], keys.len(), "no key charged twice");
    assert_eq!(audit["duplicates"], json!([]));
}
