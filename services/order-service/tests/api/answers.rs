//! Every answer stays true: what `POST /orders` tells a client about money
//! (`charge`: `none` or `unknown`) is checked against what became of the
//! order once the faults are over — by the reconciler, late commits and
//! all. The database fails (crashes, or freezes past DATABASE_TIMEOUT_MS
//! and then delivers what it held) at each phase of an order, through a
//! [`Link`] in front of it; keyed and unkeyed.
//!
//! The first tests are the ways the service used to lie (issue 23, and
//! the attack on its fix), each failing on the code before its fix.

use order_service::Config;
use order_service::store::Storage;
use serde_json::json;

use crate::database::TestDb;
use crate::helpers::{
    Reply, TestApp, closed_port_url, eventually, order_body, payment_config,
    reconciling_order_config, spawn_order_on, spawn_order_service, spawn_payment,
};
use crate::link::Link;

/// order-service on its own database behind a [`Link`], reconciling every
/// 50 ms, with a 300 ms statement timeout; payment-service behind a link of
/// its own.
struct Rig {
    db: TestDb,
    link: Link,
    payment_link: Link,
    app: TestApp,
    /// Charge requests payment-service had before the scenario.
    requests: u64,
    /// Orders the warm-up left in the database, and their charges.
    orders: i64,
    charges: u64,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Crash,
    Freeze,
}

impl Rig {
    async fn start(tune: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::create().await;
        // The schema built under the default timeout, and commits that do
        // not wait for the disk: the rig's faults are its links', and a
        // disk stalled by the rest of the suite must not fail the warm-up
        // under the rig's 300 ms.
        db.migrate().await;
        db.client()
            .await
            .batch_execute(&format!(
                "ALTER DATABASE {} SET synchronous_commit = off",
                db.name
            ))
            .await
            .unwrap();
        let link = Link::start(&db.server()).await;
        let mut config = db.config(reconciling_order_config());
        config.database.timeout_ms = 300;
        config.database.url = Some(link.url(&db.url));
        let payment = spawn_payment(payment_config());
        let payment_link = Link::start(payment.0.trim_start_matches("http://")).await;
        config.payment_service_url = format!("http://{}", payment_link.address);
        tune(&mut config);
        let storage = Storage::open(config.storage()).unwrap();
        let app = spawn_order_on(config, storage, payment);
        // Connected and prepared before any fault: a warm-up order, again
        // until one succeeds, and whatever a failed one left settled.
        let mut tries = 0;
        while app.post_order(&order_body()).await.status != 201 {
            tries += 1;
            assert!(tries < 5, "the warm-up order never succeeded");
        }
        eventually("the warm-up leaves no order pending", || async {
            db.count("SELECT count(*) FROM orders WHERE status = 'pending'")
                .await
                == 0
        })
        .await;
        let requests = app.payment_requests().await;
        let orders = db.count("SELECT count(*) FROM orders").await;
        let charges = app.charges().await;
        Self {
            db,
            link,
            payment_link,
            app,
            requests,
            orders,
            charges,
        }
    }

    fn fail(&self, fault: Fault) {
        match fault {
            Fault::Crash => self.link.crash(),
            Fault::Freeze => self.link.freeze(),
        }
    }

    fn recover(&self, fault: Fault) {
        match fault {
            Fault::Crash => self.link.restart(),
            Fault::Freeze => self.link.thaw(),
        }
    }

    /// Resolves once payment-service has received the scenario's `n`th
    /// charge request.
    async fn at_payment(&self, n: u64) {
        eventually("payment received the charge", || async {
            self.app.payment_requests().await >= self.requests + n
        })
        .await;
    }

    /// A replica on the same database, straight to it, that reconciles.
    fn reconciler(&self) -> TestApp {
        let mut config = self.db.config(reconciling_order_config());
        config.payment_service_url = self.app.payment_address.clone();
        spawn_order_service(config)
    }

    /// Resolves once the scenario's `n` orders stand in the database
    /// (read directly).
    async fn orders_written(&self, n: i64) {
        eventually("the order is written", || async {
            self.db.count("SELECT count(*) FROM orders").await >= self.orders + n
        })
        .await;
    }
}

/// One connection, on which the warm-up prepared the insert, and no
/// reconciler's statement to take it: frozen, the order's insert itself is
/// sent, and held. ([`Rig::reconciler`] reconciles afterwards.)
fn one_prepared_connection(config: &mut Config) {
    config.database.pool_size = 1;
    config.reconciler.interval_ms = 3_600_000;
}

/// `POST /orders` by a client that waits, while the test goes on.
/// The charges payment-service holds for `order_id`.
async fn charges_for(app: &TestApp, order_id: &str) -> usize {
    app.ledger_entries()
        .await
        .iter()
        .filter(|charge| charge["order_id"] == order_id)
        .count()
}

/// Whether payment-service refuses every charge under the order's key.
async fn voided(app: &TestApp, order_id: &str) -> bool {
    let charge = app.get_payment(&format!("/charges/{order_id}")).await;
    charge.status == 404
        && charge.body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("voided")
}

/// What the client was told holds against what became of the order: it
/// ends `completed` or `failed` and agrees with the ledger; one answered
/// "none" ends `failed`, never charged. An "unknown" that names no order
/// (its key could not be read) is followed as its client would: the same
/// key again, until an answer names one. Answers what the order ended as.
async fn answer_holds(app: &TestApp, reply: &Reply, key: Option<&str>) -> String {
    let charge = reply.body["charge"].as_str().unwrap_or("");
    if reply.status.is_success() {
        assert_eq!(reply.body["status"], "completed");
    } else {
        assert!(
            charge == "none" || charge == "unknown",
            "an error answer says what may be concluded: {}",
            reply.body
        );
    }
    let Some(id) = reply.body["order_id"].as_str() else {
        if charge == "unknown" {
            let key = key.expect("only a keyed request's unknown names no order");
            assert!(reply.header("retry-after").is_some(), "{}", reply.body);
            let again = app.post_order_with_key(key, &order_body()).await;
            return Box::pin(answer_holds(app, &again, Some(key))).await;
        }
        assert_eq!(charge, "none", "an order that may be charged is named");
        return "none".into();
    };
    if charge == "unknown" {
        assert_eq!(reply.header("location"), Some(&*format!("/orders/{id}")));
        assert!(
            reply.header("retry-after").is_none() || key.is_some(),
            "no blind retry: {}",
            reply.body
        );
    }
    let status = std::cell::RefCell::new(String::new());
    eventually("the order ends completed or failed", || async {
        let order = app.get(&format!("/orders/{id}")).await;
        *status.borrow_mut() = order.body["status"].as_str().unwrap_or("").to_owned();
        // Never written, and never to be charged if it ever is (a write
        // that may commit late): its payment key is voided.
        if order.status == 404 && voided(app, id).await {
            *status.borrow_mut() = "failed".into();
        }
        matches!(status.borrow().as_str(), "completed" | "failed")
    })
    .await;
    let status = status.into_inner();
    let charges = charges_for(app, id).await;
    assert_eq!(
        charges,
        usize::from(status == "completed"),
        "{id} is {status}"
    );
    if charge == "none" {
        assert_eq!(status, "failed", "answered none: {}", reply.body);
    }
    status
}

/// 1. A retry of an order charged by its first call, sent while
///    payment-service is unreachable, was told "nothing was charged". Two
///    replicas share the database; the second cannot reach payment.
#[actix_web::test]
async fn a_retry_refused_while_payment_is_unreachable_never_says_nothing_was_charged() {
    let rig = Rig::start(|_| {}).await;
    rig.app
        .set_faults(json!({"fail_after_charge_pct": 100}))
        .await;
    let first = rig.app.post_order_with_key("charged", &order_body()).await;
    assert_eq!(first.status, 502, "{}", first.body);
    assert_eq!(first.body["charge"], "unknown");
    let id = first.body["order_id"].as_str().unwrap().to_owned();

    let mut cut_off = rig.db.config(reconciling_order_config());
    cut_off.payment_service_url = closed_port_url();
    let cut_off = spawn_order_service(cut_off);
    let retried = cut_off.post_order_with_key("charged", &order_body()).await;
    retried.assert_problem(409);
    assert_eq!(retried.body["charge"], "unknown", "{}", retried.body);
    assert_eq!(retried.body["order_id"], id.as_str());
    assert!(
        !retried.body["detail"]
            .as_str()
            .unwrap()
            .contains("nothing was charged")
    );

    rig.app.set_faults(json!({})).await;
    // The refused flow releases its key after answering: until that lands,
    // the key is in flight, and the client retries as the 409 says.
    let mut done = rig.app.post_order_with_key("charged", &order_body()).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while done.status == 409 && std::time::Instant::now() < deadline {
        assert_eq!(done.body["charge"], "unknown", "{}", done.body);
        actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
        done = rig.app.post_order_with_key("charged", &order_body()).await;
    }
    assert_eq!(done.status, 201, "{}", done.body);
    assert_eq!(done.body["order_id"], id.as_str());
    assert_eq!(charges_for(&rig.app, &id).await, 1);
}

/// 2. The database crashed after payment charged, before the outcome was
///    written: the answer was 503 "retry shortly", and a client without a
///    key that retried paid twice.
#[actix_web::test]
async fn a_database_crash_after_the_charge_is_unknown_and_the_order_completes() {
    let rig = Rig::start(|_| {}).await;
    rig.app.set_faults(json!({"delay_ms": 300})).await;
    let order = rig.app.post_order_in_background(None, &order_body());
    rig.at_payment(1).await;
    rig.fail(Fault::Crash);
    let reply = order.await.unwrap();
    reply.assert_problem(500);
    assert_eq!(reply.body["charge"], "unknown");
    assert!(reply.header("retry-after").is_none(), "no blind retry");
    rig.recover(Fault::Crash);
    assert_eq!(answer_holds(&rig.app, &reply, None).await, "completed");
}

/// 3. An order waiting for a bulkhead permit when the database crashed was
///    refused (nothing reached payment), its `failed` could not be
///    written, and the reconciler charged it once the database was back.
#[actix_web::test]
async fn an_order_refused_by_the_bulkhead_while_the_database_is_down_is_never_charged() {
    let rig = Rig::start(|c| c.bulkhead.max = 1).await;
    rig.app.set_faults(json!({"delay_ms": 400})).await;
    let holder = rig.app.post_order_in_background(None, &order_body());
    rig.at_payment(1).await;
    let waiting = rig.app.post_order_in_background(None, &order_body());
    rig.orders_written(2).await;
    rig.fail(Fault::Crash);
    let refused = waiting.await.unwrap();
    refused.assert_problem(503);
    assert_eq!(refused.body["charge"], "none", "{}", refused.body);
    let charged = holder.await.unwrap();
    rig.recover(Fault::Crash);
    assert_eq!(answer_holds(&rig.app, &refused, None).await, "failed");
    assert_eq!(answer_holds(&rig.app, &charged, None).await, "completed");
}

/// 4. An insert given up on at DATABASE_TIMEOUT_MS committed later: the
///    order was answered 503, and the reconciler charged it.
#[actix_web::test]
async fn an_insert_that_commits_after_its_timeout_is_never_charged() {
    let rig = Rig::start(one_prepared_connection).await;
    rig.fail(Fault::Freeze);
    let reply = rig.app.post_order(&order_body()).await;
    reply.assert_problem(503);
    assert_eq!(reply.body["charge"], "none");
    rig.recover(Fault::Freeze);
    rig.orders_written(1).await;
    let _reconciler = rig.reconciler();
    assert_eq!(answer_holds(&rig.app, &reply, None).await, "failed");
    assert_eq!(rig.app.charges().await, rig.charges, "the warm-up's alone");
}

/// 5. A keyed retry while the database was down was told "nothing was
///    charged" about its own request, although the key's order was
///    charged, or pending and charged later: a client that believed it
///    sent a new request and paid twice.
#[actix_web::test]
async fn a_keyed_retry_while_the_database_is_down_never_says_nothing_was_charged() {
    let rig = Rig::start(|_| {}).await;
    let done = rig.app.post_order_with_key("paid", &order_body()).await;
    assert_eq!(done.status, 201);
    rig.app.set_faults(json!({"error_pct": 100})).await;
    let pending = rig.app.post_order_with_key("later", &order_body()).await;
    assert_eq!(pending.body["charge"], "unknown", "{}", pending.body);

    rig.fail(Fault::Crash);
    for key in ["paid", "later"] {
        let retried = rig.app.post_order_with_key(key, &order_body()).await;
        retried.assert_problem(503);
        assert_eq!(retried.body["charge"], "unknown", "{key}: {}", retried.body);
        assert!(retried.header("retry-after").is_some());
    }
    rig.app.set_faults(json!({})).await;
    rig.recover(Fault::Crash);
    // As its client would: the same key again, until the key is read.
    eventually("the key is replayed", || async {
        let replayed = rig.app.post_order_with_key("paid", &order_body()).await;
        replayed.status != 503 && replayed.body == done.body
    })
    .await;
    let id = pending.body["order_id"].as_str().unwrap();
    assert_eq!(
        answer_holds(&rig.app, &pending, Some("later")).await,
        "completed"
    );
    assert_eq!(charges_for(&rig.app, id).await, 1);
}

/// 6. An insert that may have committed, whose payment key could not be
///    voided either (payment-service down too): answered "unknown", it
///    must still end completed or failed — whether its insert was lost
///    for good, or landed late.
#[actix_web::test]
async fn an_unrecorded_order_whose_void_failed_still_comes_to_an_end() {
    for lost in [true, false] {
        let rig = Rig::start(one_prepared_connection).await;
        rig.payment_link.crash();
        rig.fail(Fault::Freeze);
        let reply = rig.app.post_order(&order_body()).await;
        reply.assert_problem(500);
        assert_eq!(reply.body["charge"], "unknown");
        if lost {
            // The held insert is lost with the connection.
            rig.fail(Fault::Crash);
            rig.recover(Fault::Crash);
        }
        rig.recover(Fault::Freeze);
        rig.payment_link.restart();
        let ended = answer_holds(&rig.app, &reply, None).await;
        assert_eq!(ended, "failed", "lost: {lost}");
        // answer_holds may see the payment key voided a moment before the
        // order that records it is written (the void comes first).
        let id = reply.body["order_id"].as_str().unwrap();
        let what = format!("lost: {lost}: the order is recorded failed");
        eventually(&what, || async {
            let order = rig.app.get(&format!("/orders/{id}")).await;
            order.body["status"] == "failed"
        })
        .await;
    }
}

/// 7. A keyed "none" must cover every request with the key: the client's
///    earlier try, still on its way (held with the database of its
///    replica), must not start an order after the refusal spent the key.
///    It did when a refusal forgot its key: two charges for one purchase.
#[actix_web::test]
async fn a_try_still_on_its_way_under_a_spent_key_starts_no_order() {
    let rig = Rig::start(one_prepared_connection).await;
    // The keyed reservation, prepared on the frozen replica's connection.
    assert_eq!(
        rig.app
            .post_order_with_key("warm", &order_body())
            .await
            .status,
        201
    );
    let buyer = rig.reconciler();
    let mut cut_off = rig.db.config(reconciling_order_config());
    cut_off.payment_service_url = closed_port_url();
    let cut_off = spawn_order_service(cut_off);

    // The one connection the first try's reservation goes out on.
    let frozen = rig.link.upstream_ports();
    rig.fail(Fault::Freeze);
    let first_try = rig
        .app
        .post_order_with_key("one-purchase", &order_body())
        .await;
    assert_eq!(first_try.body["charge"], "unknown", "{}", first_try.body);
    let refused = cut_off
        .post_order_with_key("one-purchase", &order_body())
        .await;
    assert_eq!(refused.body["charge"], "none", "{}", refused.body);
    // As told: a new request, with a new key.
    let bought = buyer
        .post_order_with_key("one-purchase-again", &order_body())
        .await;
    assert_eq!(bought.status, 201);
    // The first try's reservation reaches the database now: its backend
    // runs it, cannot answer (the client gave up), and exits.
    rig.recover(Fault::Freeze);
    eventually("the held reservation has run", || async {
        let ports: Vec<i32> = frozen.iter().map(|&p| i32::from(p)).collect();
        let client = rig.db.client().await;
        let row = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE client_port = ANY($1)",
                &[&ports],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0) == 0
    })
    .await;
    let again = buyer
        .post_order_with_key("one-purchase", &order_body())
        .await;
    assert_eq!(
        again.body["type"], "urn:reliable-orders:problem:idempotency-key-spent",
        "{}",
        again.body
    );
    let orders = "SELECT count(*) FROM orders";
    assert_eq!(
        rig.db.count(orders).await,
        4,
        "warm-ups, the refused order, the purchase"
    );
    assert_eq!(rig.app.charges().await, 3, "warm-ups and the purchase");
}

/// Where in an order the database fails.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// The reservation, or the unkeyed insert.
    Insert,
    /// Waiting for a bulkhead permit, after the insert.
    BulkheadWait,
    /// During a payment call that charges (then the outcome and the key's
    /// completion are written).
    Charged,
    /// During a call that payment-service declines.
    Declined,
    /// During a call that charges, then fails: the order stays pending.
    FailedAfterCharge,
}

/// The database fails at `phase`, with `fault`; the client's answer is
/// checked, then held against the order's end.
async fn fault_at(phase: Phase, fault: Fault, keyed: bool) {
    let rig = Rig::start(|c| {
        c.bulkhead.max = 1;
        // One call that answers after 300 ms: a budget far above it, so
        // that a stalled machine cannot turn the phase into a 504.
        if matches!(phase, Phase::Charged | Phase::Declined) {
            c.retry.timeout_ms = 2_000;
        }
    })
    .await;
    let key = keyed.then(|| format!("{phase:?}-{fault:?}"));
    let (body, faults) = match phase {
        Phase::Declined => (
            json!({"merchant_id": "m", "amount": 20000, "currency": "USD"}),
            json!({"delay_ms": 300}),
        ),
        Phase::FailedAfterCharge => (
            order_body(),
            json!({"delay_ms": 300, "fail_after_charge_pct": 100}),
        ),
        Phase::BulkheadWait => (order_body(), json!({"delay_ms": 400})),
        _ => (order_body(), json!({"delay_ms": 300})),
    };
    rig.app.set_faults(faults).await;
    let (reply, expected, charge) = match phase {
        Phase::Insert => {
            rig.fail(fault);
            (
                rig.app
                    .post_order_in_background(key.as_deref(), &body)
                    .await
                    .unwrap(),
                503,
                "none",
            )
        }
        Phase::BulkheadWait => {
            let holder = rig.app.post_order_in_background(None, &order_body());
            rig.at_payment(1).await;
            let waiting = rig.app.post_order_in_background(key.as_deref(), &body);
            rig.orders_written(2).await;
            rig.fail(fault);
            let reply = waiting.await.unwrap();
            holder.await.unwrap();
            (reply, 503, "none")
        }
        _ => {
            let order = rig.app.post_order_in_background(key.as_deref(), &body);
            rig.at_payment(1).await;
            rig.fail(fault);
            let expected = match phase {
                Phase::Declined => (402, "none"),
                Phase::FailedAfterCharge => (504, "unknown"),
                _ => (500, "unknown"),
            };
            (order.await.unwrap(), expected.0, expected.1)
        }
    };
    let case = format!("{phase:?}, {fault:?}, keyed: {keyed}: {}", reply.body);
    // A keyed reservation that fails cannot tell what its key already
    // names: unknown, retry with the key.
    let charge = match (phase, keyed) {
        (Phase::Insert, true) => "unknown",
        _ => charge,
    };
    assert_eq!(reply.status.as_u16(), expected, "{case}");
    assert_eq!(reply.body["charge"], charge, "{case}");
    eprintln!("{case}");
    rig.app.set_faults(json!({})).await;
    rig.recover(fault);
    answer_holds(&rig.app, &reply, key.as_deref()).await;
    // Whatever else ran (the bulkhead's holder), once quiet: every charge
    // belongs to exactly one completed order.
    eventually("no order stays pending", || async {
        rig.db
            .count("SELECT count(*) FROM orders WHERE status = 'pending'")
            .await
            == 0
    })
    .await;
    let completed = rig
        .db
        .count("SELECT count(*) FROM orders WHERE status = 'completed'")
        .await;
    assert_eq!(rig.app.charges().await, completed as u64, "{case}");
}

async fn every_fault_at(phase: Phase) {
    for fault in [Fault::Crash, Fault::Freeze] {
        for keyed in [false, true] {
            fault_at(phase, fault, keyed).await;
        }
    }
}

#[actix_web::test]
async fn the_database_failing_during_the_insert_keeps_every_answer_true() {
    every_fault_at(Phase::Insert).await;
}

#[actix_web::test]
async fn the_database_failing_during_a_bulkhead_wait_keeps_every_answer_true() {
    every_fault_at(Phase::BulkheadWait).await;
}

#[actix_web::test]
async fn the_database_failing_during_a_charge_keeps_every_answer_true() {
    every_fault_at(Phase::Charged).await;
}

#[actix_web::test]
async fn the_database_failing_during_a_decline_keeps_every_answer_true() {
    every_fault_at(Phase::Declined).await;
}

#[actix_web::test]
async fn the_database_failing_during_a_charge_then_failure_keeps_every_answer_true() {
    every_fault_at(Phase::FailedAfterCharge).await;
}
