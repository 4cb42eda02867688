//! Every validation row of docs/contract.md §2: its status and a problem+json body,
//! and nothing recorded or charged — with the in-memory store and with
//! PostgreSQL (where nothing may be written either).

use serde_json::{Value, json};

use crate::database::TestDb;
use crate::helpers::{TestApp, order_body, spawn_app};

/// Runs the check `$check(app)` against both stores: `$name::in_memory`
/// and `$name::on_postgres`, where it also finds no order written beyond
/// the ones it answered 201 for.
macro_rules! on_both_stores {
    ($($name:ident => $check:ident),* $(,)?) => {$(
        mod $name {
            #[actix_web::test]
            async fn in_memory() {
                super::$check(&super::spawn_app()).await;
            }

            #[actix_web::test]
            async fn on_postgres() {
                let db = super::TestDb::create().await;
                db.migrate().await;
                let app = db.spawn_app();
                let created = super::$check(&app).await;
                let stored = db.count("SELECT count(*) FROM orders").await;
                assert_eq!(stored, created as i64, "orders written");
                let keys = db.count("SELECT count(*) FROM idempotency_keys").await;
                assert_eq!(keys, 0, "keys written");
            }
        }
    )*};
}

on_both_stores! {
    each_invalid_body_gets_its_status_and_a_problem => invalid_bodies,
    a_body_over_16_kib_is_413 => oversized_bodies,
    a_wrong_content_type_is_400 => wrong_content_types,
    a_bad_idempotency_key_is_400 => bad_keys,
}

fn with(field: &str, value: Value) -> String {
    let mut body = order_body();
    body[field] = value;
    body.to_string()
}

fn without(field: &str) -> String {
    let mut body = order_body();
    body.as_object_mut().unwrap().remove(field);
    body.to_string()
}

/// Answers how many orders it created (here and below).
async fn invalid_bodies(app: &TestApp) -> usize {
    let cases: Vec<(&str, String, u16, Option<&str>)> = vec![
        (
            "malformed JSON",
            r#"{"merchant_id": "m","#.into(),
            400,
            None,
        ),
        ("not an object", "[1, 2]".into(), 400, None),
        ("unknown field", with("coupon", json!("FREE")), 400, None),
        (
            "missing merchant_id",
            without("merchant_id"),
            422,
            Some("merchant_id"),
        ),
        ("missing amount", without("amount"), 422, Some("amount")),
        (
            "null currency",
            with("currency", Value::Null),
            422,
            Some("currency"),
        ),
        ("amount 0", with("amount", json!(0)), 422, Some("amount")),
        (
            "amount negative",
            with("amount", json!(-5)),
            422,
            Some("amount"),
        ),
        (
            "amount 3 decimals",
            r#"{"merchant_id":"m","amount":1.999,"currency":"USD"}"#.into(),
            422,
            Some("amount"),
        ),
        (
            "amount too large",
            with("amount", json!(1_000_000.01)),
            422,
            Some("amount"),
        ),
        (
            "amount as string",
            with("amount", json!("99.99")),
            422,
            Some("amount"),
        ),
        (
            "currency lower case",
            with("currency", json!("usd")),
            422,
            Some("currency"),
        ),
        (
            "currency not ISO 4217",
            with("currency", json!("ABC")),
            422,
            Some("currency"),
        ),
        (
            "currency 2 letters",
            with("currency", json!("US")),
            422,
            Some("currency"),
        ),
        (
            "currency as number",
            with("currency", json!(840)),
            422,
            Some("currency"),
        ),
        (
            "merchant_id with spaces",
            with("merchant_id", json!("merchant 123")),
            422,
            Some("merchant_id"),
        ),
        (
            "merchant_id 65 chars",
            with("merchant_id", json!("m".repeat(65))),
            422,
            Some("merchant_id"),
        ),
        (
            "merchant_id empty",
            with("merchant_id", json!("")),
            422,
            Some("merchant_id"),
        ),
        (
            "JPY with cents",
            r#"{"merchant_id":"m","amount":1.50,"currency":"JPY"}"#.into(),
            422,
            Some("amount"),
        ),
    ];
    for (name, body, status, field) in cases {
        let reply = app.post_order_raw(body).await;
        assert_eq!(reply.status.as_u16(), status, "{name}: {}", reply.body);
        reply.assert_problem(status);
        if let Some(field) = field {
            let named = reply.body["errors"]
                .as_array()
                .is_some_and(|errors| errors.iter().any(|e| e["field"] == field));
            assert!(named, "{name}: the problem names {field}: {}", reply.body);
        }
    }
    assert_eq!(app.charges().await, 0, "no invalid order reached payment");
    0
}

async fn oversized_bodies(app: &TestApp) -> usize {
    let padding = "m".repeat(16 * 1024);
    let reply = app
        .post_order_raw(with("merchant_id", json!(padding)))
        .await;
    reply.assert_problem(413);
    // Exactly at the limit is read (and then refused for the field, not the size).
    let mut body = with("merchant_id", json!(""));
    body.push_str(&" ".repeat(16 * 1024 - body.len()));
    app.post_order_raw(body).await.assert_problem(422);
    0
}

async fn wrong_content_types(app: &TestApp) -> usize {
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut req = app.post_orders();
        if let Some(ct) = content_type {
            req = req.insert_header(("Content-Type", ct));
        }
        app.send(req, Some(order_body().to_string()))
            .await
            .assert_problem(400);
    }
    let ok = app
        .send(
            app.post_orders()
                .insert_header(("Content-Type", "application/json; charset=utf-8")),
            Some(order_body().to_string()),
        )
        .await;
    assert_eq!(ok.status, 201);
    1
}

async fn bad_keys(app: &TestApp) -> usize {
    for key in ["k".repeat(256), String::new()] {
        let reply = app
            .send(
                app.post_orders()
                    .insert_header(("Content-Type", "application/json"))
                    .insert_header(("Idempotency-Key", key)),
                Some(order_body().to_string()),
            )
            .await;
        reply.assert_problem(400);
    }
    // Two keys: which one would name the request? Neither: refused.
    let reply = app
        .send(
            app.post_orders()
                .insert_header(("Content-Type", "application/json"))
                .append_header(("Idempotency-Key", "first"))
                .append_header(("Idempotency-Key", "second")),
            Some(order_body().to_string()),
        )
        .await;
    reply.assert_problem(400);
    assert!(
        reply.body["detail"].as_str().unwrap().contains("once"),
        "{}",
        reply.body
    );
    assert_eq!(app.charges().await, 0);
    0
}
