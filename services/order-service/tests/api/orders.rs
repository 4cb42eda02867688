use serde_json::json;

use crate::helpers::{order_body, spawn_app};

#[actix_web::test]
async fn a_valid_order_is_201_with_location_and_can_be_read_back() {
    let app = spawn_app();
    let reply = app.post_order(&order_body()).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let order = &reply.body;
    let id = order["order_id"].as_str().unwrap();
    assert_eq!(
        reply.header("location"),
        Some(format!("/orders/{id}").as_str())
    );
    assert_eq!(order["status"], "completed");
    assert_eq!(order["merchant_id"], "merchant_123");
    assert_eq!(order["amount"].to_string(), "99.99");
    assert_eq!(order["currency"], "USD");
    assert!(
        order["transaction_id"]
            .as_str()
            .unwrap()
            .starts_with("txn_")
    );
    chrono::DateTime::parse_from_rfc3339(order["created_at"].as_str().unwrap())
        .expect("created_at is RFC 3339");

    let read = app.get(&format!("/orders/{id}")).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body, reply.body);

    // The payment was charged once, under the order id as its key.
    let charge = app.get_payment(&format!("/charges/{id}")).await;
    assert_eq!(charge.body["transaction_id"], order["transaction_id"]);
    assert_eq!(app.charges().await, 1);
}

/// The Go original's curl examples, byte for byte (whitespace included).
#[actix_web::test]
async fn the_go_originals_curl_examples_work_verbatim() {
    let app = spawn_app();
    let body = "{\n    \"merchant_id\": \"merchant_123\",\n    \"amount\": 99.99,\n    \"currency\": \"USD\"\n  }";
    let plain = app.post_order_raw(body).await;
    assert_eq!(plain.status, 201);
    let with_key = app
        .send(
            app.post_orders()
                .insert_header(("Content-Type", "application/json"))
                .insert_header(("Idempotency-Key", "order-abc-123")),
            Some(body.into()),
        )
        .await;
    assert_eq!(with_key.status, 201);
    assert_eq!(with_key.body["status"], "completed");
}

#[actix_web::test]
async fn an_unknown_order_is_a_404_problem() {
    let app = spawn_app();
    app.get(&format!("/orders/{}", uuid::Uuid::new_v4()))
        .await
        .assert_problem(404);
    app.get("/orders/not-an-id").await.assert_problem(404);
}

#[actix_web::test]
async fn a_declined_payment_is_402_and_the_order_failed() {
    let app = spawn_app();
    let reply = app
        .post_order(&json!({"merchant_id": "m", "amount": 10000.01, "currency": "USD"}))
        .await;
    reply.assert_problem(402);
    let id = reply.body["order_id"]
        .as_str()
        .expect("problem names the order");
    let order = app.get(&format!("/orders/{id}")).await;
    assert_eq!(order.body["status"], "failed");
    assert_eq!(app.charges().await, 0);
}
