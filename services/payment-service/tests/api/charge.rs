use futures_util::future::join_all;

use crate::helpers::{charge_body, config, new_order_id, spawn};

#[actix_web::test]
async fn a_new_charge_is_201_and_its_key_replays_the_same_charge() {
    let app = spawn(config());
    let order = new_order_id();
    let first = app.charge(&order, charge_body(&order, "99.99")).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["status"], "approved");
    assert_eq!(first.body["order_id"], order.as_str());
    assert_eq!(first.body["amount"].to_string(), "99.99");
    assert_eq!(first.body["currency"], "USD");
    let txn = first.body["transaction_id"].as_str().unwrap().to_owned();

    // The same money written differently is the same body.
    let again = app.charge(&order, charge_body(&order, "99.990")).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["transaction_id"], txn.as_str());
    assert_eq!(app.charges().await, 1);

    let stored = app.get(&format!("/charges/{order}")).await;
    assert_eq!(stored.status, 200);
    assert_eq!(stored.body["transaction_id"], txn.as_str());
}

#[actix_web::test]
async fn the_same_key_with_a_different_body_is_422_and_charges_nothing_more() {
    let app = spawn(config());
    let order = new_order_id();
    assert_eq!(
        app.charge(&order, charge_body(&order, "10.00"))
            .await
            .status,
        201
    );
    let reply = app.charge(&order, charge_body(&order, "10.01")).await;
    reply.assert_problem(422);
    assert_eq!(
        reply.body["type"],
        "urn:reliable-orders:problem:idempotency-key-reused"
    );
    assert_eq!(app.charges().await, 1);
}

#[actix_web::test]
async fn twenty_concurrent_requests_with_one_key_make_one_charge() {
    let app = spawn(config());
    let order = new_order_id();
    let replies = join_all((0..20).map(|_| app.charge(&order, charge_body(&order, "5.00")))).await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    assert_eq!(created, 1);
    let txns: std::collections::HashSet<_> = replies
        .iter()
        .map(|r| r.body["transaction_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(txns.len(), 1, "every reply names the one charge");
    let audit = app.get("/ledger").await.body;
    assert_eq!(audit["charges"], 1);
    assert_eq!(audit["duplicates"], serde_json::json!([]));
}

#[actix_web::test]
async fn amounts_over_ten_thousand_are_declined_without_a_charge() {
    let app = spawn(config());
    let order = new_order_id();
    let reply = app.charge(&order, charge_body(&order, "10000.01")).await;
    reply.assert_problem(402);
    assert_eq!(app.charges().await, 0);
    assert_eq!(
        app.charge(&order, charge_body(&order, "10000"))
            .await
            .status,
        201
    );
}

#[actix_web::test]
async fn invalid_requests_are_refused_with_problems() {
    let app = spawn(config());
    let order = new_order_id();
    let no_key = app
        .send(app.post_charge(), Some(charge_body(&order, "1.00")))
        .await;
    no_key.assert_problem(400);

    let bad_key = app
        .charge(&"k".repeat(256), charge_body(&order, "1.00"))
        .await;
    bad_key.assert_problem(400);

    let invalid = app
        .charge(
            &order,
            r#"{"order_id":"nope","merchant_id":"m","amount":0,"currency":"XYZ"}"#.into(),
        )
        .await;
    invalid.assert_problem(422);
    let fields: Vec<_> = invalid.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fields, ["order_id", "amount", "currency"]);

    app.charge(&order, "{not json".into())
        .await
        .assert_problem(400);
    app.get("/charges/unknown-key").await.assert_problem(404);
    assert_eq!(app.charges().await, 0);
}

#[actix_web::test]
async fn a_deadline_too_short_for_the_work_is_504_without_a_charge() {
    let mut config = config();
    config.gateway_ms = 50;
    let app = spawn(config);
    let order = new_order_id();
    let request = |ms: &'static str| {
        app.post_charge()
            .insert_header(("Idempotency-Key", order.as_str()))
            .insert_header(("X-Request-Timeout-Ms", ms))
    };
    let started = std::time::Instant::now();
    let late = app
        .send(request("20"), Some(charge_body(&order, "1.00")))
        .await;
    late.assert_problem(504);
    assert!(
        started.elapsed().as_millis() < 50,
        "answered at once, not after the work"
    );
    assert_eq!(app.charges().await, 0);

    let in_time = app
        .send(request("2000"), Some(charge_body(&order, "1.00")))
        .await;
    assert_eq!(in_time.status, 201);
    app.send(request("soon"), Some(charge_body(&order, "1.00")))
        .await
        .assert_problem(400);
}

#[actix_web::test]
async fn two_idempotency_keys_are_400_without_a_charge() {
    let app = spawn(config());
    let order = new_order_id();
    let req = app
        .post_charge()
        .append_header(("Idempotency-Key", order.as_str()))
        .append_header(("Idempotency-Key", "another"));
    let reply = app.send(req, Some(charge_body(&order, "1.00"))).await;
    reply.assert_problem(400);
    assert_eq!(app.charges().await, 0);
}

/// Found by the schema-driven fuzzer (`make fuzz`): serde reads a struct
/// from an array of its fields, so `[]` was taken as "no faults"; and a
/// budget past the described maximum was taken.
#[actix_web::test]
async fn an_array_body_and_an_overflowing_deadline_are_400_without_a_charge() {
    let app = spawn(config());
    let order = new_order_id();
    let positional = format!(r#"["{order}","merchant_123",1.00,"USD"]"#);
    app.charge(&order, positional).await.assert_problem(400);
    for budget in ["18446744073709551615", "9007199254740992"] {
        let req = app
            .post_charge()
            .insert_header(("Idempotency-Key", order.as_str()))
            .insert_header(("X-Request-Timeout-Ms", budget));
        app.send(req, Some(charge_body(&order, "1.00")))
            .await
            .assert_problem(400);
    }
    let faults = app
        .client
        .put(format!("{}/admin/faults", app.address))
        .insert_header(("Content-Type", "application/json"))
        .insert_header((
            "Authorization",
            format!("Bearer {}", crate::helpers::ADMIN_TOKEN),
        ));
    app.send(faults, Some("[]".into()))
        .await
        .assert_problem(400);
    assert_eq!(app.charges().await, 0);
    assert_eq!(
        app.charge(&order, charge_body(&order, "1.00")).await.status,
        201
    );
}
