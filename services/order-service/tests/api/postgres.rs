//! order-service on PostgreSQL: the store's rules and races against the
//! real server, and black-box tests with several replicas on one database.
//! Each test has a database of its own ([`TestDb`]).

use actors::idempotency::{
    Complete, Holder, KeyBackend, Release, Reservation, Reserve, StoredResponse,
};
use common::domain::{Amount, Currency, MerchantId, OrderId};
use order_service::Config;
use order_service::domain::{Order, OrderStatus};
use order_service::store::{OrderStore, Settle, Storage, StoreError, Updated};
use rust_decimal::Decimal;
use serde_json::json;
use tracing::Span;

use crate::database::TestDb;
use crate::hangup::{after, post_order_then_reset};
use crate::helpers::{
    TestApp, closed_port_url, eventually, order_body, order_config, payment_config, spawn_app_on,
    spawn_order_service,
};
use crate::link::Link;

fn order(amount: &str, currency: &str) -> Order {
    Order {
        order_id: OrderId::new(),
        status: OrderStatus::Pending,
        merchant_id: MerchantId::parse("merchant_123").unwrap(),
        amount: Amount::from_decimal(amount.parse::<Decimal>().unwrap()).unwrap(),
        currency: Currency::parse(currency).unwrap(),
        transaction_id: None,
        reason: None,
        created_at: chrono::DateTime::from_timestamp_micros(chrono::Utc::now().timestamp_micros())
            .unwrap(),
        maybe_charged: true,
        calls: 1,
    }
}

fn with(order: &Order, status: OrderStatus) -> Order {
    Order {
        status,
        ..order.clone()
    }
}

fn reserve(key: &str, fingerprint: &str, record: &Order) -> (Holder, Reserve<Order, OrderId>) {
    let holder = Holder::next();
    let msg = Reserve {
        key: key.into(),
        fingerprint: fingerprint.into(),
        order_id: record.order_id,
        holder,
        record: record.clone(),
        span: Span::none(),
    };
    (holder, msg)
}

fn complete(key: &str, holder: Holder, body: &str, effect: Settle) -> Complete<Settle> {
    Complete {
        key: key.into(),
        holder,
        response: StoredResponse {
            status: 201,
            headers: vec![("location".into(), "/orders/x".into())],
            body: body.as_bytes().to_vec(),
        },
        effect,
        span: Span::none(),
    }
}

#[actix_web::test]
async fn migrations_build_the_schema_once_even_when_replicas_start_together() {
    let db = TestDb::create().await;
    let config = order_config();
    let (a, b) = (db.store(&config), db.store(&config));
    let (first, second) = tokio::join!(a.migrate(), b.migrate());
    first.unwrap();
    second.unwrap();
    db.store(&config).migrate().await.unwrap();
    assert_eq!(db.count("SELECT count(*) FROM schema_migrations").await, 1);
    assert_eq!(db.count("SELECT count(*) FROM orders").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM idempotency_keys").await, 0);
}

#[actix_web::test]
async fn an_order_comes_back_exactly_as_it_was_written() {
    let db = TestDb::create().await;
    let store = db.store(&order_config());
    for (amount, currency) in [("1234.56", "USD"), ("0.01", "EUR"), ("500", "JPY")] {
        let written = order(amount, currency);
        store.insert(written.clone()).await.unwrap();
        let read = store.get(written.order_id).await.unwrap().unwrap();
        assert_eq!(read.amount.value(), amount.parse::<Decimal>().unwrap());
        assert_eq!(read, written);
    }
    assert_eq!(store.get(OrderId::new()).await.unwrap(), None);
}

#[actix_web::test]
async fn a_second_insert_of_one_id_is_refused() {
    let db = TestDb::create().await;
    let store = db.store(&order_config());
    let written = order("1.00", "USD");
    store.insert(written.clone()).await.unwrap();
    let again = store.insert(written.clone()).await;
    assert!(matches!(again, Err(StoreError::Duplicate(id)) if id == written.order_id));
}

/// The compare-and-set rules of the in-memory store, on the shared one.
#[actix_web::test]
async fn the_shared_store_moves_an_order_only_forward() {
    let db = TestDb::create().await;
    let store = db.store(&order_config());
    let pending = order("10.00", "USD");
    store.insert(pending.clone()).await.unwrap();
    let completed = Order {
        transaction_id: Some("txn_1".into()),
        ..with(&pending, OrderStatus::Completed)
    };
    let first = store.update(completed.clone(), OrderStatus::Pending).await;
    assert_eq!(first.unwrap(), Updated::Written);
    // A slower writer that read it pending is refused, and told the truth.
    let late = store.update(pending.clone(), OrderStatus::Pending).await;
    assert_eq!(late.unwrap(), Updated::Stale(completed.clone()));
    // Completed is final whatever the writer claims to have read.
    for to in [OrderStatus::Pending, OrderStatus::Failed] {
        let tried = store
            .update(with(&completed, to), OrderStatus::Completed)
            .await;
        assert_eq!(tried.unwrap(), Updated::Stale(completed.clone()));
    }
}

#[actix_web::test]
async fn a_refusal_cannot_fail_an_order_another_flow_has_taken_into_a_call() {
    let db = TestDb::create().await;
    let store = db.store(&order_config());
    let first = order("10.00", "USD");
    store.insert(first.clone()).await.unwrap();
    let second = Order {
        calls: 2,
        ..first.clone()
    };
    let claimed = store.claim(second.clone(), OrderStatus::Pending).await;
    assert_eq!(claimed.unwrap(), Updated::Written);
    // Of two flows that read the same count, only one claims the order.
    let twice = store.claim(second.clone(), OrderStatus::Pending).await;
    assert_eq!(twice.unwrap(), Updated::Stale(second.clone()));
    // The first flow's "my call never reached payment" proves nothing now.
    let refused = store
        .update(with(&first, OrderStatus::Failed), OrderStatus::Pending)
        .await;
    assert_eq!(refused.unwrap(), Updated::Stale(second.clone()));
    // Its stale "pending" lands but never lowers the count.
    store
        .update(first.clone(), OrderStatus::Pending)
        .await
        .unwrap();
    let stored = store.get(first.order_id).await.unwrap().unwrap();
    assert_eq!(stored.calls, 2);
}

#[actix_web::test]
async fn of_two_replicas_reserving_one_key_at_once_exactly_one_wins() {
    let db = TestDb::create().await;
    let config = order_config();
    let (a, b) = (db.store(&config), db.store(&config));
    a.migrate().await.unwrap();
    for round in 0..20 {
        let key = format!("race-{round}");
        let (ra, rb) = (order("5.00", "USD"), order("5.00", "USD"));
        let ((_, ma), (_, mb)) = (reserve(&key, "f", &ra), reserve(&key, "f", &rb));
        let (x, y) = tokio::join!(KeyBackend::reserve(&a, ma), KeyBackend::reserve(&b, mb));
        let mut answers = [x.unwrap(), y.unwrap()];
        answers.sort_by_key(|r| r != &Reservation::New);
        let winner = [&ra, &rb]
            .into_iter()
            .find(|o| {
                answers[1]
                    == Reservation::InFlight {
                        order_id: Some(o.order_id),
                    }
            })
            .is_some();
        assert_eq!(answers[0], Reservation::New, "{key}");
        assert!(
            winner,
            "{key}: the loser is told the winner's order: {answers:?}"
        );
    }
    // Each winner wrote its order with its key, and no loser did.
    assert_eq!(db.count("SELECT count(*) FROM orders").await, 20);
    assert_eq!(
        db.count("SELECT count(*) FROM orders o JOIN idempotency_keys k USING (order_id)")
            .await,
        20
    );
}

#[actix_web::test]
async fn a_key_is_completed_with_its_outcome_and_replays_on_every_replica() {
    let db = TestDb::create().await;
    let config = order_config();
    let (a, b) = (db.store(&config), db.store(&config));
    let record = order("7.00", "USD");
    let (holder, msg) = reserve("k", "f", &record);
    assert_eq!(
        KeyBackend::reserve(&a, msg).await.unwrap(),
        Reservation::New
    );
    // The reservation wrote its pending order.
    let pending = a.get(record.order_id).await.unwrap().unwrap();
    assert_eq!(pending.status, OrderStatus::Pending);

    // An outcome written from a stale read is refused: the key stays in flight.
    let completed = Order {
        transaction_id: Some("txn".into()),
        ..with(&record, OrderStatus::Completed)
    };
    let stale = Settle::Order {
        order: completed.clone(),
        from: OrderStatus::Failed,
    };
    let refused = KeyBackend::complete(&a, complete("k", holder, "answer", stale)).await;
    assert_eq!(refused.unwrap(), Err(record.clone()));
    let (_, again) = reserve("k", "f", &order("7.00", "USD"));
    assert_eq!(
        KeyBackend::reserve(&b, again).await.unwrap(),
        Reservation::InFlight {
            order_id: Some(record.order_id),
        }
    );

    let settle = Settle::Order {
        order: completed.clone(),
        from: OrderStatus::Pending,
    };
    let done = KeyBackend::complete(&a, complete("k", holder, "answer", settle)).await;
    assert_eq!(done.unwrap(), Ok(()));
    assert_eq!(b.get(record.order_id).await.unwrap(), Some(completed));
    let (_, from_b) = reserve("k", "f", &order("7.00", "USD"));
    match KeyBackend::reserve(&b, from_b).await.unwrap() {
        Reservation::Replay(response) => {
            assert_eq!(response.body, b"answer");
            assert_eq!(response.headers, [("location".into(), "/orders/x".into())]);
        }
        other => panic!("expected a replay, got {other:?}"),
    }
    let (_, other_body) = reserve("k", "another body", &order("7.00", "USD"));
    assert_eq!(
        KeyBackend::reserve(&b, other_body).await.unwrap(),
        Reservation::Mismatch
    );
    // A late release from the old holder changes nothing.
    let release = Release {
        key: "k".into(),
        holder,
        span: Span::none(),
    };
    KeyBackend::release(&a, release).await.unwrap();
    let (_, after) = reserve("k", "f", &order("7.00", "USD"));
    assert!(matches!(
        KeyBackend::reserve(&b, after).await.unwrap(),
        Reservation::Replay(_)
    ));
}

#[actix_web::test]
async fn a_holder_that_lost_its_key_settles_the_order_but_answers_nothing_for_the_key() {
    let db = TestDb::create().await;
    let mut config = order_config();
    config.retry.timeout_ms = 100;
    config.idempotency.lease_ms = 300;
    let (a, b) = (db.store(&config), db.store(&config));
    let record = order("8.00", "USD");
    let (lost, msg) = reserve("k", "f", &record);
    assert_eq!(
        KeyBackend::reserve(&a, msg).await.unwrap(),
        Reservation::New
    );
    // A's lease ends; B takes the key over.
    let resume = Reservation::Resume {
        order_id: record.order_id,
    };
    let holder = std::cell::Cell::new(None);
    eventually("the lease ends and B takes the key over", || {
        let (h, msg) = reserve("k", "f", &order("8.00", "USD"));
        let (b, resume, holder) = (b.clone(), resume.clone(), &holder);
        async move {
            holder.set(Some(h));
            KeyBackend::reserve(&b, msg).await.unwrap() == resume
        }
    })
    .await;
    let holder = holder.get().unwrap();

    // A's late outcome is the order's, but its answer is not the key's.
    let completed = Order {
        transaction_id: Some("txn".into()),
        ..with(&record, OrderStatus::Completed)
    };
    let settle = || Settle::Order {
        order: completed.clone(),
        from: OrderStatus::Pending,
    };
    let late = KeyBackend::complete(&a, complete("k", lost, "A's answer", settle())).await;
    assert_eq!(late.unwrap(), Ok(()));
    assert_eq!(
        b.get(record.order_id).await.unwrap(),
        Some(completed.clone())
    );
    let (_, msg) = reserve("k", "f", &order("8.00", "USD"));
    assert_eq!(
        KeyBackend::reserve(&a, msg).await.unwrap(),
        Reservation::InFlight {
            order_id: Some(record.order_id),
        }
    );
    // B reads the order as it stands and answers that for the key.
    let stale = KeyBackend::complete(&b, complete("k", holder, "B's answer", settle())).await;
    assert_eq!(stale.unwrap(), Err(completed));
    let as_it_stands = complete("k", holder, "B's answer", Settle::AsItStands);
    assert_eq!(
        KeyBackend::complete(&b, as_it_stands).await.unwrap(),
        Ok(())
    );
    let (_, msg) = reserve("k", "f", &order("8.00", "USD"));
    match KeyBackend::reserve(&a, msg).await.unwrap() {
        Reservation::Replay(response) => assert_eq!(response.body, b"B's answer"),
        other => panic!("expected B's answer replayed, got {other:?}"),
    }
}

#[actix_web::test]
async fn a_released_or_expired_key_resumes_its_order_on_another_replica() {
    let db = TestDb::create().await;
    let mut config = order_config();
    config.retry.timeout_ms = 100;
    config.idempotency.lease_ms = 300;
    let (a, b) = (db.store(&config), db.store(&config));
    let record = order("3.00", "USD");
    let (holder, msg) = reserve("released", "f", &record);
    assert_eq!(
        KeyBackend::reserve(&a, msg).await.unwrap(),
        Reservation::New
    );
    let release = Release {
        key: "released".into(),
        holder,
        span: Span::none(),
    };
    KeyBackend::release(&a, release).await.unwrap();
    let resume = Reservation::Resume {
        order_id: record.order_id,
    };
    let (_, msg) = reserve("released", "f", &order("3.00", "USD"));
    assert_eq!(KeyBackend::reserve(&b, msg).await.unwrap(), resume);

    // A holder that dies says nothing: its lease ends and B takes over.
    let record = order("4.00", "USD");
    let (_, msg) = reserve("orphaned", "f", &record);
    assert_eq!(
        KeyBackend::reserve(&a, msg).await.unwrap(),
        Reservation::New
    );
    let (_, msg) = reserve("orphaned", "f", &order("4.00", "USD"));
    assert_eq!(
        KeyBackend::reserve(&b, msg).await.unwrap(),
        Reservation::InFlight {
            order_id: Some(record.order_id),
        }
    );
    let resume = Reservation::Resume {
        order_id: record.order_id,
    };
    eventually("the lease ends and the key is taken over", || async {
        let (_, msg) = reserve("orphaned", "f", &order("4.00", "USD"));
        KeyBackend::reserve(&b, msg).await.unwrap() == resume
    })
    .await;
}

#[actix_web::test]
async fn expired_keys_are_swept() {
    let db = TestDb::create().await;
    let mut config = order_config();
    config.idempotency.ttl_secs = 0;
    let store = db.store(&config);
    for i in 0..3 {
        let (key, record) = (format!("old-{i}"), order("1.00", "USD"));
        let (holder, msg) = reserve(&key, "f", &record);
        KeyBackend::reserve(&store, msg).await.unwrap();
        let settle = Settle::Order {
            order: with(&record, OrderStatus::Completed),
            from: OrderStatus::Pending,
        };
        let done = KeyBackend::complete(&store, complete(&key, holder, "201", settle)).await;
        assert_eq!(done.unwrap(), Ok(()));
    }
    let swept = std::cell::Cell::new(0);
    eventually("every expired key is deleted", || async {
        swept.set(swept.get() + KeyBackend::sweep(&store).await.unwrap());
        swept.get() == 3
    })
    .await;
    assert_eq!(db.count("SELECT count(*) FROM idempotency_keys").await, 0);
    // The orders stay: a key's TTL is not the order's.
    assert_eq!(db.count("SELECT count(*) FROM orders").await, 3);
}

#[actix_web::test]
async fn a_key_is_not_swept_while_it_is_held_or_its_order_is_pending() {
    let db = TestDb::create().await;
    let mut config = order_config();
    config.idempotency.ttl_secs = 0;
    let store = db.store(&config);
    let record = order("2.00", "USD");
    let (holder, msg) = reserve("kept", "f", &record);
    KeyBackend::reserve(&store, msg).await.unwrap();
    assert_eq!(KeyBackend::sweep(&store).await.unwrap(), 0, "held");
    let release = Release {
        key: "kept".into(),
        holder,
        span: Span::none(),
    };
    KeyBackend::release(&store, release).await.unwrap();
    assert_eq!(
        KeyBackend::sweep(&store).await.unwrap(),
        0,
        "its order is pending"
    );
    let completed = with(&record, OrderStatus::Completed);
    store.update(completed, OrderStatus::Pending).await.unwrap();
    assert_eq!(
        KeyBackend::sweep(&store).await.unwrap(),
        1,
        "settled and expired"
    );
}

/// A database host that goes silent without closing anything (a dead host,
/// a firewall dropping flows) leaves connections that never answer: they
/// must be replaced, and the service must recover by itself.
#[actix_web::test]
async fn connections_to_a_database_gone_silent_are_replaced() {
    let db = TestDb::create().await;
    let proxy = Link::start(&db.server()).await;
    let mut config = db.config(order_config());
    config.database.url = Some(proxy.url(&db.url));
    config.database.timeout_ms = 300;
    let storage = Storage::open(config.storage()).unwrap();
    let app = spawn_app_on(config, payment_config(), storage);
    for _ in 0..3 {
        assert_eq!(app.post_order(&order_body()).await.status, 201);
    }
    let silenced = proxy.silence_open();
    let refused = std::cell::Cell::new(0);
    eventually("orders go through new connections", || async {
        let reply = app.post_order(&order_body()).await;
        if reply.status != 201 {
            reply.assert_problem(503);
            refused.set(refused.get() + 1);
        }
        reply.status == 201
    })
    .await;
    eprintln!("503s before recovery: {}", refused.get());
    assert!(
        proxy.connections() > silenced,
        "new connections were opened"
    );
}

/// A key whose order is still pending outlives its TTL: the client's
/// retry resumes that order instead of starting a second one.
async fn a_pending_order_keeps_its_key(app: &TestApp) {
    app.set_faults(json!({"error_pct": 100})).await;
    let first = app.post_order_with_key("slow-retry", &order_body()).await;
    first.assert_problem(502);
    let swept = app
        .reliability
        .idempotency
        .send(actors::idempotency::Sweep)
        .await
        .unwrap();
    assert_eq!(swept.unwrap(), 0, "the order is pending");
    app.set_faults(json!({})).await;
    let retried = app.post_order_with_key("slow-retry", &order_body()).await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    assert_eq!(retried.body["order_id"], first.body["order_id"]);
    assert_eq!(app.charges().await, 1);
}

fn expiring_keys() -> Config {
    let mut config = order_config();
    config.idempotency.ttl_secs = 0;
    config
}

#[actix_web::test]
async fn a_pending_order_keeps_its_key_past_the_ttl_in_memory() {
    let app = crate::helpers::spawn_app_with(expiring_keys(), payment_config());
    a_pending_order_keeps_its_key(&app).await;
}

#[actix_web::test]
async fn a_pending_order_keeps_its_key_past_the_ttl_on_postgres() {
    let db = TestDb::create().await;
    let config = expiring_keys();
    let app = spawn_app_on(
        db.config(config.clone()),
        payment_config(),
        db_storage(&db, &config),
    );
    a_pending_order_keeps_its_key(&app).await;
}

/// Both services, and `replicas` order-services on `db`.
fn spawn_replicas(db: &TestDb, config: Config, replicas: usize) -> Vec<TestApp> {
    let first = spawn_app_on(
        db.config(config.clone()),
        payment_config(),
        db_storage(db, &config),
    );
    let mut apps = vec![];
    for _ in 1..replicas {
        let mut config = db.config(config.clone());
        config.payment_service_url = first.payment_address.clone();
        let mut app = spawn_order_service(config);
        app.payment_address = first.payment_address.clone();
        apps.push(app);
    }
    apps.insert(0, first);
    apps
}

fn db_storage(db: &TestDb, config: &Config) -> Storage {
    Storage::Shared(db.store(config))
}

#[actix_web::test]
async fn one_key_sent_to_two_replicas_at_once_makes_one_order_and_one_charge() {
    let db = TestDb::create().await;
    let apps = spawn_replicas(&db, order_config(), 2);
    for round in 0..10 {
        let key = format!("both-{round}");
        let body = order_body();
        let (a, b) = tokio::join!(
            apps[0].post_order_with_key(&key, &body),
            apps[1].post_order_with_key(&key, &body)
        );
        let mut statuses = [a.status.as_u16(), b.status.as_u16()];
        statuses.sort();
        // One created it; the other saw it in flight, or replayed it.
        assert!(
            statuses == [201, 409] || statuses == [201, 201],
            "{key}: {statuses:?}"
        );
        if statuses == [201, 201] {
            assert_eq!(a.body, b.body);
        }
    }
    assert_eq!(db.count("SELECT count(*) FROM orders").await, 10);
    assert_eq!(apps[0].charges().await, 10);
    assert_eq!(apps[0].payment_requests().await, 10);
}

#[actix_web::test]
async fn an_order_taken_on_one_replica_is_replayed_and_read_on_the_other() {
    let db = TestDb::create().await;
    let apps = spawn_replicas(&db, order_config(), 2);
    let created = apps[0]
        .post_order_with_key("replay-me", &order_body())
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let replayed = apps[1]
        .post_order_with_key("replay-me", &order_body())
        .await;
    assert_eq!(replayed.status, 201);
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    assert_eq!(replayed.body, created.body);
    let id = created.body["order_id"].as_str().unwrap();
    let read = apps[1].get(&format!("/orders/{id}")).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body, created.body);
    let other = apps[1]
        .post_order_with_key(
            "replay-me",
            &json!({"merchant_id": "m2", "amount": 1, "currency": "USD"}),
        )
        .await;
    other.assert_problem(422);
    assert_eq!(apps[0].charges().await, 1);
}

/// A replica killed between its reservation and its charge leaves a
/// pending order and a key held by nobody. Another replica's reconciler
/// completes the order; the client's retry, anywhere, gets it.
#[actix_web::test]
async fn the_orders_of_a_replica_that_died_are_completed_by_the_others() {
    let db = TestDb::create().await;
    let mut config = order_config();
    config.reconciler.interval_ms = 50;
    config.retry.timeout_ms = 100;
    config.idempotency.lease_ms = 200;
    let apps = spawn_replicas(&db, config.clone(), 2);
    let body = order_body();
    // The fingerprint the service computes for this body.
    let probe = apps[0].post_order_with_key("probe", &body).await;
    assert_eq!(probe.status, 201);
    let fingerprint: String = db
        .client()
        .await
        .query_one(
            "SELECT fingerprint FROM idempotency_keys WHERE key = 'probe'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // What the dead replica left: its reservation and order, nothing else.
    let dead = db.store(&config);
    let left = order("99.99", "USD");
    let (_, msg) = reserve("orphan", &fingerprint, &left);
    assert_eq!(
        KeyBackend::reserve(&dead, msg).await.unwrap(),
        Reservation::New
    );

    let id = left.order_id.to_string();
    eventually(
        "a live replica completes the dead replica's order",
        || async { apps[1].get(&format!("/orders/{id}")).await.body["status"] == "completed" },
    )
    .await;
    let retried = apps[0].post_order_with_key("orphan", &body).await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    assert_eq!(retried.body["order_id"], id.as_str());
    let charged = apps[0].ledger_entries().await;
    let for_order = charged
        .iter()
        .filter(|e| e["order_id"] == id.as_str())
        .count();
    assert_eq!(for_order, 1);
    assert_eq!(
        db.count("SELECT count(*) FROM orders WHERE status = 'pending'")
            .await,
        0
    );
}

/// A client resets its connection at a moment of the flow (before the
/// reservation, during the charge, around the outcome's write), then
/// retries with its key on the other replica until it gets an answer.
#[actix_web::test]
async fn a_client_that_hangs_up_at_any_moment_leaves_one_order_and_one_charge() {
    let db = TestDb::create().await;
    let mut config = order_config();
    config.reconciler.interval_ms = 50;
    let apps = spawn_replicas(&db, config, 2);
    apps[0].set_faults(json!({"delay_ms": 30})).await;
    let body = order_body().to_string();
    let moments = [0, 100, 500, 2_000, 10_000, 25_000, 32_000, 40_000, 60_000];
    for (i, micros) in moments.iter().enumerate() {
        let key = format!("hangup-{i}");
        let moment = after(std::time::Duration::from_micros(*micros));
        post_order_then_reset(&apps[0].address, Some(&key), &body, moment).await;
        eventually("the retry gets its order", || async {
            let reply = apps[1].post_order_with_key(&key, &order_body()).await;
            assert!(matches!(reply.status.as_u16(), 201 | 409), "{}", reply.body);
            reply.status == 201
        })
        .await;
    }
    let settled = "SELECT count(*) FROM orders WHERE status <> 'completed'";
    eventually("every order completes", || async {
        db.count(settled).await == 0
    })
    .await;
    let held = "SELECT count(*) FROM idempotency_keys WHERE holder IS NOT NULL";
    eventually("every key is let go", || async {
        db.count(held).await == 0
    })
    .await;
    assert_eq!(
        db.count("SELECT count(*) FROM orders").await,
        moments.len() as i64
    );
    let entries = apps[0].ledger_entries().await;
    let ids: std::collections::HashSet<_> = entries.iter().map(|e| &e["order_id"]).collect();
    assert_eq!(entries.len(), moments.len(), "one charge per order");
    assert_eq!(ids.len(), moments.len());
}

/// Runs `orders` keyed orders on a replica of its own, then closes its
/// pool so that every backend reports its statistics; answers the
/// database's commits so far.
async fn commits_after(db: &TestDb, orders: usize) -> i64 {
    let mut config = order_config();
    config.idempotency.sweep_secs = 3600;
    let store = db.store(&config);
    let app = spawn_app_on(
        db.config(config),
        payment_config(),
        Storage::Shared(store.clone()),
    );
    for _ in 0..orders {
        let key = uuid::Uuid::new_v4().to_string();
        let reply = app.post_order_with_key(&key, &order_body()).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    for handle in &app.handles {
        handle.stop(true).await;
    }
    store.close();
    eventually("the replica's connections end", || async {
        db.backends().await == 0
    })
    .await;
    db.commits().await
}

#[actix_web::test]
async fn a_keyed_order_that_succeeds_commits_at_most_twice() {
    let db = TestDb::create().await;
    db.store(&order_config()).migrate().await.unwrap();
    let before = commits_after(&db, 0).await;
    let few = commits_after(&db, 5).await;
    let many = commits_after(&db, 25).await;
    // Each run pays the same start-up; the difference is the orders'.
    let per_order = ((many - few) - (few - before)) as f64 / 20.0;
    eprintln!("commits per keyed order: {per_order}");
    assert!(per_order <= 2.0, "{per_order} commits per order");
    assert!(per_order >= 1.0, "{per_order}: the count measures nothing");
}

#[actix_web::test]
async fn an_unreachable_database_is_a_503_with_retry_after_and_no_driver_text() {
    let mut config = order_config();
    config.database.url = Some(format!(
        "{}/orders",
        closed_port_url().replace("http://", "postgres://postgres@")
    ));
    config.database.timeout_ms = 500;
    let app = crate::helpers::spawn_app_with(config, payment_config());
    let replies = [
        app.post_order(&order_body()).await,
        app.post_order_with_key("k", &order_body()).await,
        app.get(&format!("/orders/{}", OrderId::new())).await,
        app.get("/ready").await,
    ];
    for reply in &replies {
        reply.assert_problem(503);
        let text = reply.body.to_string().to_lowercase();
        for driver in ["refused", "os error", "postgres", "tokio", "connect"] {
            assert!(!text.contains(driver), "{driver} in {text}");
        }
    }
    for reply in &replies[..3] {
        assert!(reply.header("retry-after").is_some());
    }
    assert_eq!(app.payment_requests().await, 0, "nothing was charged");
    assert_eq!(app.get("/health").await.status, 200);
}

/// The server ends a session idle in a transaction at twice the timeout,
/// an `int` of milliseconds there, and below 10 ms a statement on a new
/// connection does not finish even on loopback (zero would be no deadline
/// on the server at all): a timeout no replica could work with is refused
/// at start, not met on each connection.
#[test]
fn a_database_timeout_the_server_cannot_take_is_refused_at_start() {
    use clap::Parser;
    let with = |ms: &str| {
        order_service::Config::try_parse_from(["order-service", "--database-timeout-ms", ms])
    };
    for refused in ["0", "9", "600001"] {
        assert!(with(refused).is_err(), "{refused} ms taken");
    }
    assert_eq!(with("10").unwrap().database.timeout_ms, 10);
    assert_eq!(with("600000").unwrap().database.timeout_ms, 600_000);
}

/// A `schema_migrations` table of another tool (golang-migrate's layout)
/// is not this service's: migrating fails with a cause that names it,
/// never a panic, and leaves the table as it was.
#[actix_web::test]
async fn another_tools_schema_migrations_fails_the_migration_with_its_name() {
    let db = TestDb::create().await;
    db.client()
        .await
        .batch_execute(
            "CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL);
             INSERT INTO schema_migrations VALUES (20240101, false)",
        )
        .await
        .unwrap();
    let failed = db.store(&order_config()).migrate().await.unwrap_err();
    assert!(
        failed
            .to_string()
            .contains("schema_migrations is another tool's table"),
        "{failed}"
    );
    assert_eq!(db.count("SELECT count(*) FROM schema_migrations").await, 1);
    let orders = "SELECT count(*) FROM pg_tables WHERE tablename = 'orders'";
    assert_eq!(db.count(orders).await, 0);
    let app = db.spawn_app();
    assert_eq!(app.get("/ready").await.status, 503);
}

#[actix_web::test]
async fn ready_answers_200_when_the_database_does() {
    let db = TestDb::create().await;
    let apps = spawn_replicas(&db, order_config(), 1);
    let ready = apps[0].get("/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
}

#[actix_web::test]
async fn refusals_that_never_reached_payment_spend_their_key_rows() {
    let db = TestDb::create().await;
    let app = db.spawn_app();
    crate::idempotency::refused_keys_are_spent(&app).await;
    let spent = "SELECT count(*) FROM idempotency_keys WHERE response_status = 422";
    assert_eq!(db.count(spent).await, 2_000);
}
