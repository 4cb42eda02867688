//! `Idempotency-Key` on `POST /orders`: one operation per key, whatever the
//! concurrency, and a retry after a transient failure resumes the same order.

use std::collections::HashSet;

use futures_util::future::join_all;
use serde_json::json;

use actors::circuit_breaker::Mode;

use crate::helpers::{
    PAYMENT_API_KEY, TestApp, eventually, order_body, payment_config, reconciling_order_config,
    spawn_app, spawn_app_with,
};

#[actix_web::test]
async fn the_same_key_replays_the_same_order_with_a_marker() {
    let app = spawn_app();
    let first = app
        .post_order_with_key("order-abc-123", &order_body())
        .await;
    assert_eq!(first.status, 201);
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = app
        .post_order_with_key("order-abc-123", &order_body())
        .await;
    assert_eq!(again.status, 201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(app.charges().await, 1);
}

#[actix_web::test]
async fn the_same_key_with_another_body_is_422() {
    let app = spawn_app();
    app.post_order_with_key("k-1", &order_body()).await;
    let other = json!({"merchant_id": "merchant_123", "amount": 5, "currency": "USD"});
    let reply = app.post_order_with_key("k-1", &other).await;
    reply.assert_problem(422);
    assert_eq!(
        reply.body["type"],
        "urn:reliable-orders:problem:idempotency-key-reused"
    );
    assert_eq!(app.charges().await, 1);
}

/// Found by the attack on issue 30's changes: a body refused before its
/// key is read (400, 413, 422) said "none" for a key whose order was
/// charged; now "unknown" whenever the request carries a key.
#[actix_web::test]
async fn a_bad_body_under_a_charged_key_never_says_nothing_was_charged() {
    let app = spawn_app();
    let first = app.post_order_with_key("k-charged", &order_body()).await;
    assert_eq!(first.status, 201);
    let invalid = json!({"merchant_id": "merchant_123", "amount": -1, "currency": "USD"});
    let big = format!("{{\"merchant_id\": \"{}\"}}", "m".repeat(20_000));
    for (body, status) in [
        ("{".to_owned(), 400),
        (
            json!({"merchant_id": "m", "amount": 1, "currency": "USD", "x": 1}).to_string(),
            400,
        ),
        (invalid.to_string(), 422),
        (big, 413),
    ] {
        let keyed = app
            .post_orders()
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("Idempotency-Key", "k-charged"));
        let reply = app.send(keyed, Some(body.clone())).await;
        reply.assert_problem(status);
        assert_eq!(reply.body["charge"], "unknown", "{body}: {}", reply.body);
        let detail = reply.body["detail"].as_str().unwrap();
        assert!(detail.contains("retry with the same key"), "{detail}");
        let unkeyed = app.post_order_raw(body.clone()).await;
        unkeyed.assert_problem(status);
        assert_eq!(unkeyed.body["charge"], "none", "{body}");
    }
    // The key still replays its order.
    let again = app.post_order_with_key("k-charged", &order_body()).await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.charges().await, 1);
}

#[actix_web::test]
async fn twenty_concurrent_requests_with_one_key_make_one_order_and_one_charge() {
    let app = spawn_app();
    app.set_faults(json!({"delay_ms": 50})).await;
    let body = order_body();
    let replies = join_all((0..20).map(|_| app.post_order_with_key("same-key", &body))).await;
    let fresh: Vec<_> = replies
        .iter()
        .filter(|r| r.status == 201 && r.header("idempotent-replayed").is_none())
        .collect();
    assert_eq!(fresh.len(), 1, "exactly one request did the work");
    let order_id = &fresh[0].body["order_id"];
    for reply in &replies {
        match reply.status.as_u16() {
            201 => assert_eq!(&reply.body["order_id"], order_id),
            409 => {
                reply.assert_problem(409);
                assert_eq!(reply.header("retry-after"), Some("1"));
            }
            other => panic!("{other}: {}", reply.body),
        }
    }
    assert!(
        replies.iter().any(|r| r.status == 409),
        "the others overlapped it"
    );
    assert_eq!(app.charges().await, 1);
}

#[actix_web::test]
async fn a_retry_after_a_transient_failure_resumes_the_same_order() {
    let app = spawn_app();
    app.set_faults(json!({"error_pct": 100})).await;
    let failed = app.post_order_with_key("retry-me", &order_body()).await;
    failed.assert_problem(502);
    let order_id = failed.body["order_id"].clone();

    app.set_faults(json!({})).await;
    let retried = app.post_order_with_key("retry-me", &order_body()).await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    assert_eq!(
        retried.body["order_id"], order_id,
        "same order, same payment key"
    );
    assert_eq!(retried.header("idempotent-replayed"), None);
    let stored = app
        .get(&format!("/orders/{}", order_id.as_str().unwrap()))
        .await;
    assert_eq!(stored.body["status"], "completed");
    assert_eq!(app.charges().await, 1);
}

#[actix_web::test]
async fn a_retry_after_a_charge_whose_answer_was_lost_is_not_charged_again() {
    let app = spawn_app();
    app.set_faults(json!({"fail_after_charge_pct": 100})).await;
    let lost = app.post_order_with_key("lost-answer", &order_body()).await;
    lost.assert_problem(502);
    assert_eq!(
        app.charges().await,
        1,
        "charged, though every answer was a 500"
    );

    app.set_faults(json!({})).await;
    let retried = app.post_order_with_key("lost-answer", &order_body()).await;
    assert_eq!(retried.status, 201);
    assert_eq!(retried.body["order_id"], lost.body["order_id"]);
    assert_eq!(app.charges().await, 1);
}

#[actix_web::test]
async fn a_decline_is_replayed_not_retried() {
    let app = spawn_app();
    let body = json!({"merchant_id": "m", "amount": 20000, "currency": "USD"});
    let first = app.post_order_with_key("big", &body).await;
    first.assert_problem(402);
    let requests = app.payment_requests().await;
    let again = app.post_order_with_key("big", &body).await;
    again.assert_problem(402);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    assert_eq!(app.payment_requests().await, requests);
}

#[actix_web::test]
async fn keys_are_independent() {
    let app = spawn_app();
    let ids: HashSet<_> = join_all((0..10).map(|i| {
        let app = &app;
        async move {
            let reply = app
                .post_order_with_key(&format!("key-{i}"), &order_body())
                .await;
            assert_eq!(reply.status, 201);
            reply.body["order_id"].as_str().unwrap().to_owned()
        }
    }))
    .await
    .into_iter()
    .collect();
    assert_eq!(ids.len(), 10);
    assert_eq!(app.charges().await, 10);
}

#[actix_web::test]
async fn refusals_that_never_reached_payment_spend_their_keys() {
    refused_keys_are_spent(&spawn_app()).await;
}

/// With the breaker open, every keyed order is refused before any attempt
/// and answered "nothing charged": its key is spent, so that no request
/// with it — a retry, a double submit, a try still on its way — ever
/// starts an order that could be charged. A new key makes its order. Shared
/// with the PostgreSQL store's test.
pub async fn refused_keys_are_spent(app: &TestApp) {
    const REFUSED: usize = 2_000;
    app.set_breaker(Mode::ForcedOpen).await;
    let body = order_body();
    let keys: Vec<String> = (0..REFUSED).map(|i| format!("refused-{i}")).collect();
    let mut refused_ids = Vec::new();
    for chunk in keys.chunks(50) {
        let replies = join_all(chunk.iter().map(|key| app.post_order_with_key(key, &body))).await;
        for reply in replies {
            reply.assert_problem(503);
            assert_eq!(reply.body["charge"], "none");
            // Held open by an operator: nothing is failing, no probe is due.
            let detail = reply.body["detail"].as_str().unwrap();
            assert!(detail.contains("by an operator"), "{detail}");
            assert!(reply.header("retry-after").is_none());
            refused_ids.push(reply.body["order_id"].as_str().unwrap().to_owned());
        }
    }
    let stats = app.key_stats().await;
    assert_eq!((stats.in_flight, stats.completed), (0, REFUSED));
    assert_eq!(app.payment_requests().await, 0, "nothing reached payment");
    let refused = app.get(&format!("/orders/{}", refused_ids[0])).await;
    assert_eq!(
        refused.body["status"], "failed",
        "the refused order stands, failed"
    );

    app.set_breaker(Mode::Auto).await;
    let retried = app.post_order_with_key("refused-0", &order_body()).await;
    retried.assert_problem(422);
    assert_eq!(
        retried.body["type"],
        "urn:reliable-orders:problem:idempotency-key-spent"
    );
    assert_eq!(retried.body["charge"], "none");
    assert_eq!(retried.body["order_id"], refused_ids[0].as_str());
    assert_eq!(retried.header("idempotent-replayed"), Some("true"));
    let new = app
        .post_order_with_key("refused-0-again", &order_body())
        .await;
    assert_eq!(new.status, 201, "{}", new.body);
    assert_eq!(app.charges().await, 1);
}

/// A key whose order failed after all (payment-service voided its payment
/// key, and a re-drive learned it) is spent: concurrent retries under it
/// start no new order. Each is told the key is spent, or that its order —
/// the failed one — is in flight; never of another.
#[actix_web::test]
async fn retries_under_a_key_whose_order_failed_start_no_new_order() {
    let app = spawn_app_with(reconciling_order_config(), payment_config());
    app.set_faults(json!({"error_pct": 100})).await;
    let first = app.post_order_with_key("voided", &order_body()).await;
    assert_eq!(first.body["charge"], "unknown", "{}", first.body);
    let id = first.body["order_id"].as_str().unwrap().to_owned();
    let void = app
        .client
        .post(format!("{}/charges/{id}/void", app.payment_address))
        .insert_header(("Authorization", format!("Bearer {PAYMENT_API_KEY}")));
    assert_eq!(void.send().await.unwrap().status(), 200);
    app.set_faults(json!({})).await;
    eventually("a re-drive learns the order failed", || async {
        app.get(&format!("/orders/{id}")).await.body["status"] == "failed"
    })
    .await;

    let body = order_body();
    let retries = join_all((0..6).map(|_| app.post_order_with_key("voided", &body))).await;
    for retry in &retries {
        assert_eq!(retry.body["order_id"], id.as_str(), "{}", retry.body);
        let kind = retry.body["type"].as_str().unwrap();
        assert!(
            kind.ends_with(":idempotency-key-spent")
                || kind.ends_with(":idempotency-key-in-flight"),
            "{}",
            retry.body
        );
    }
    let last = app.post_order_with_key("voided", &order_body()).await;
    last.assert_problem(422);
    assert_eq!(app.charges().await, 0);
}
