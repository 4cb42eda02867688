//! What an order answers when payment-service fails it, and what it records:
//! `failed` only when no charge can exist, `pending` whenever one might.

use serde_json::json;

use order_service::store::Storage;

use crate::database::TestDb;
use crate::helpers::{
    closed_port_url, eventually, order_body, order_config, payment_config,
    reconciling_order_config, spawn_app, spawn_app_on, spawn_app_with, spawn_order_service,
};

#[actix_web::test]
async fn payment_unreachable_is_502_and_the_order_failed_uncharged() {
    let mut config = order_config();
    config.payment_service_url = closed_port_url();
    let app = spawn_order_service(config);
    let reply = app.post_order(&order_body()).await;
    reply.assert_problem(502);
    let id = reply.body["order_id"]
        .as_str()
        .expect("problem names the order");
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("nothing was charged")
    );
    let order = app.get(&format!("/orders/{id}")).await;
    assert_eq!(order.body["status"], "failed");
    // Our words, not the OS's, in the answer and in the order.
    for text in [&reply.body["detail"], &order.body["reason"]] {
        let text = text.as_str().unwrap();
        assert!(text.contains("payment-service unreachable"), "{text}");
        for os in ["os error", "refused", "Connection"] {
            assert!(!text.contains(os), "{text}");
        }
    }
}

/// Found by the chaos suite: payment SIGKILLed after it recorded a charge
/// and before it answered. awc reports that closed connection as a connect
/// error, which read as "never sent": the order was failed, its key
/// forgotten, and the client's retry charged a second order. Here the
/// "payment" reads each request and closes without a word.
#[actix_web::test]
async fn a_connection_closed_after_the_request_leaves_the_order_pending() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut request);
            // Dropped: the connection closes with no answer.
        }
    });
    let mut config = order_config();
    config.payment_service_url = format!("http://127.0.0.1:{port}");
    config.retry.max_attempts = 1;
    let app = spawn_order_service(config);
    let reply = app
        .post_order_with_key("closed-after-send", &order_body())
        .await;
    reply.assert_problem(502);
    let id = reply.body["order_id"].as_str().unwrap().to_owned();
    let order = app.get(&format!("/orders/{id}")).await;
    assert_eq!(order.body["status"], "pending", "it may have been charged");
    // The key is kept: a retry resumes the same order.
    assert_eq!(app.keys_held().await, 1);
    let again = app
        .post_order_with_key("closed-after-send", &order_body())
        .await;
    assert_eq!(again.body["order_id"], id.as_str());
}

#[actix_web::test]
async fn a_payment_error_is_502_and_leaves_the_order_pending() {
    let app = spawn_app();
    app.set_faults(json!({"fail_after_charge_pct": 100})).await;
    let reply = app.post_order(&order_body()).await;
    reply.assert_problem(502);
    let id = reply.body["order_id"].as_str().unwrap();
    let order = app.get(&format!("/orders/{id}")).await;
    assert_eq!(
        order.body["status"], "pending",
        "a charge may exist: it does"
    );
    assert_eq!(app.charges().await, 1);
}

#[actix_web::test]
async fn a_slow_payment_is_504_within_the_budget_and_the_order_pending() {
    let mut payment = payment_config();
    payment.faults.delay_ms = 2_000;
    let mut order = order_config();
    order.retry.timeout_ms = 300;
    let app = spawn_app_with(order, payment);
    let started = std::time::Instant::now();
    let reply = app.post_order(&order_body()).await;
    let elapsed = started.elapsed();
    reply.assert_problem(504);
    assert!(
        elapsed.as_millis() < 300 + 200,
        "answered within the budget: {elapsed:?}"
    );
    let id = reply.body["order_id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/orders/{id}")).await.body["status"],
        "pending"
    );
}

/// Found by the protocol's model (`model/`): a 4xx other than 402 was a
/// decline. Here payment holds the charge of a pending order, and a
/// replica whose payment key payment-service refuses (a rotation half
/// done) re-drives it: 401, which must leave the order pending, not
/// `failed` with "nothing charged".
#[actix_web::test]
async fn a_replica_refused_by_payment_never_fails_an_order_it_may_have_charged() {
    let db = TestDb::create().await;
    // This replica never re-drives (its tick is an hour), yet what it
    // writes falls due after the hold: the other replica alone re-drives.
    let mut config = order_config();
    config.reconciler.max_backoff_ms = 100;
    let store = Storage::Shared(db.store(&config));
    let app = spawn_app_on(db.config(config), payment_config(), store);
    app.set_faults(json!({"fail_after_charge_pct": 100})).await;
    let first = app.post_order_with_key("rotated", &order_body()).await;
    first.assert_problem(502);
    assert_eq!(first.body["charge"], "unknown");
    let id = first.body["order_id"].as_str().unwrap().to_owned();
    assert_eq!(app.ledger_entries().await.len(), 1);

    let mut rotated = db.config(reconciling_order_config());
    rotated.payment_service_url = app.payment_address.clone();
    rotated.payment_api_key = Some("the-next-key".into());
    let redriving = spawn_order_service(rotated);
    let metrics = format!("{}/metrics", redriving.address);
    eventually("the refused replica re-drives the order", || async {
        let mut reply = awc::Client::default().get(&metrics).send().await.unwrap();
        let text = reply.body().await.unwrap();
        // Counters are listed from the start, at 0.
        String::from_utf8_lossy(&text)
            .lines()
            .any(|l| l.starts_with("reconcile_attempts_total{") && !l.ends_with(" 0"))
    })
    .await;
    let order = app.get(&format!("/orders/{id}")).await;
    assert_eq!(order.body["status"], "pending", "{}", order.body);

    app.set_faults(json!({})).await;
    let retried = app.post_order_with_key("rotated", &order_body()).await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    assert_eq!(app.ledger_entries().await.len(), 1);
}
