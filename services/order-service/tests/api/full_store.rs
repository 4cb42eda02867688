//! A full in-memory store and a client key: the key's purchase stays
//! open (its order id kept for the client's retry), so no answer under
//! it says "nothing charged" while a request with the key, on its way or
//! taken over, may still charge. Found by attacking the change that once
//! forgot such a key.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use common::domain::OrderId;
use order_service::domain::{Order, OrderStatus};
use order_service::store::{MemoryStore, OrderStore, PendingOrder, StoreError, Updated};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::gated::{Gate, GatedStore};
use crate::helpers::{
    eventually, order_body, order_config, payment_config, spawn_app_with, spawn_app_with_store,
};

fn full_store_config(orders_max: u64) -> order_service::Config {
    let mut config = order_config();
    config.database.orders_max = orders_max;
    config.breaker.consecutive_failures = 1000;
    config.breaker.min_calls = 1000;
    config
}

/// The client's first try of a purchase is still on its way (its body
/// arriving) when its retry finds no room: the retry is told to retry with
/// the key, and the first try, once room frees, charges the key's order —
/// the one the retry with the key then replays. One charge.
#[actix_web::test]
async fn a_try_on_its_way_and_a_retry_refused_for_room_make_one_charge() {
    let app = spawn_app_with(full_store_config(3), payment_config());
    app.set_faults(json!({"error_pct": 100})).await;
    for i in 0..3 {
        let fill = format!("fill-{i}");
        assert_eq!(
            app.post_order_with_key(&fill, &order_body()).await.status,
            502
        );
    }
    let address = app.address.trim_start_matches("http://").to_owned();
    let body = order_body().to_string();
    let (head, tail) = body.split_at(10);
    let mut first_try = tokio::net::TcpStream::connect(&address).await.unwrap();
    let request = format!(
        "POST /orders HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Idempotency-Key: one-purchase\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{head}",
        body.len()
    );
    first_try.write_all(request.as_bytes()).await.unwrap();

    let refused = app.post_order_with_key("one-purchase", &order_body()).await;
    refused.assert_problem(503);
    assert_eq!(
        refused.body["type"],
        "urn:reliable-orders:problem:order-store-full"
    );
    assert_eq!(refused.body["charge"], "unknown", "{}", refused.body);

    // Room frees: the pending orders' own clients retry, and complete.
    app.set_faults(json!({})).await;
    for i in 0..3 {
        let fill = format!("fill-{i}");
        assert_eq!(
            app.post_order_with_key(&fill, &order_body()).await.status,
            201
        );
    }
    first_try.write_all(tail.as_bytes()).await.unwrap();
    let mut answer = String::new();
    first_try.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    // As told: the same key again, which replays that order.
    let retried = app.post_order_with_key("one-purchase", &order_body()).await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    assert!(answer.contains(retried.body["order_id"].as_str().unwrap()));
    assert_eq!(app.charges().await, 4, "one charge for the purchase");
}

/// A first try whose insert outlives the key's lease: its retry takes the
/// key over and leaves the key's order pending; the store fills; the
/// first try's insert then finds no room. That first try cannot speak for
/// the key's order, which is another request's now: "unknown", and the
/// order stays known to the reconciler, which completes it.
#[actix_web::test]
async fn a_try_whose_key_was_taken_over_never_says_nothing_was_charged() {
    let mut config = full_store_config(2);
    config.idempotency.lease_ms = 1000;
    config.reconciler.interval_ms = 50;
    let store = GatedStore::with_room(Gate::Insert, MemoryStore::new(2, config.storage().redrives));
    let app = spawn_app_with_store(config, payment_config(), store.clone());
    app.set_faults(json!({"error_pct": 100})).await;
    let first = app.post_order_in_background(Some("taken"), &order_body());
    store.reached.notified().await;
    // The lease runs out while the first try's insert waits.
    actix_rt::time::sleep(Duration::from_millis(1200)).await;
    let retry = app.post_order_with_key("taken", &order_body()).await;
    assert_eq!(retry.status, 502, "{}", retry.body);
    let id = retry.body["order_id"].as_str().unwrap().to_owned();
    assert_eq!(app.post_order(&order_body()).await.status, 502, "full now");
    store.open();
    let first = first.await.unwrap();
    first.assert_problem(503);
    assert_eq!(first.body["charge"], "unknown", "{}", first.body);

    app.set_faults(json!({})).await;
    eventually("the reconciler completes the key's order", || async {
        app.get(&format!("/orders/{id}")).await.body["status"] == "completed"
    })
    .await;
    let retried = app.post_order_with_key("taken", &order_body()).await;
    assert_eq!(retried.body["order_id"], id.as_str(), "{}", retried.body);
}

/// The memory store whose next insert fails as a timeout would: after
/// writing (mode 1) or without (mode 2).
struct UncertainInsert {
    inner: MemoryStore,
    mode: AtomicU8,
}

#[async_trait]
impl OrderStore for UncertainInsert {
    async fn insert(&self, order: Order) -> Result<(), StoreError> {
        match self.mode.swap(0, Ordering::SeqCst) {
            1 => {
                self.inner.insert(order).await?;
                Err(StoreError::Uncertain("timed out after writing".into()))
            }
            2 => Err(StoreError::Uncertain("timed out".into())),
            _ => self.inner.insert(order).await,
        }
    }
    async fn update(&self, order: Order, from: OrderStatus) -> Result<Updated, StoreError> {
        self.inner.update(order, from).await
    }
    async fn claim(&self, order: Order, from: OrderStatus) -> Result<Updated, StoreError> {
        self.inner.claim(order, from).await
    }
    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.inner.get(id).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
    async fn claim_due(&self, n: usize) -> Result<Vec<(PendingOrder, u32)>, StoreError> {
        self.inner.claim_due(n).await
    }
    async fn pending(&self) -> Result<usize, StoreError> {
        self.inner.pending().await
    }
}

/// An insert that may have been made keeps the key with its order id:
/// "unknown", and the retry resumes that order, charged once.
#[actix_web::test]
async fn an_uncertain_insert_keeps_the_key_and_its_order() {
    for mode in [1u8, 2] {
        let store = Arc::new(UncertainInsert {
            inner: MemoryStore::new(10, order_config().storage().redrives),
            mode: AtomicU8::new(mode),
        });
        let app = spawn_app_with_store(order_config(), payment_config(), store);
        let first = app.post_order_with_key("u", &order_body()).await;
        first.assert_problem(503);
        assert_eq!(
            first.body["type"],
            "urn:reliable-orders:problem:idempotency-key-unknown"
        );
        assert_eq!(first.body["charge"], "unknown");
        let stats = app.key_stats().await;
        assert_eq!((stats.entries, stats.released), (1, 1), "mode {mode}");
        let retry = app.post_order_with_key("u", &order_body()).await;
        assert_eq!(retry.status, 201, "{}", retry.body);
        let again = app.post_order_with_key("u", &order_body()).await;
        assert_eq!(again.body["order_id"], retry.body["order_id"]);
        assert_eq!(app.charges().await, 1, "mode {mode}");
    }
}
