//! Client keys and rate limits on `POST /orders`: off by default; with
//! CLIENT_KEYS a request needs a known key, and a client over its limit
//! gets 429 with `Retry-After` and the RateLimit headers while the others
//! go on; without keys, RATE_LIMIT_PER_IP limits each address, believing
//! `X-Forwarded-For` only from a trusted proxy. A refusal creates and
//! charges nothing, and says `charge: none` unless the request has an
//! Idempotency-Key (an earlier request with it may have charged: the
//! answer is `unknown`, retry with the same key). The clock is a [`ManualClock`]: no bucket refills
//! unless the test moves time.

use std::sync::Arc;
use std::time::Duration;

use actors::clock::ManualClock;
use order_service::store::Storage;
use serde_json::Value;

use crate::helpers::{
    Reply, TestApp, memory_store, order_body, order_config, payment_config, spawn_app,
    spawn_order_on_clock, spawn_payment,
};

const FLOOD_KEY: &str = "flood-key-0123456789";
const CALM_KEY: &str = "calm-key-01234567890";

/// Both services; order-service's limits set by `limits`, on `clock`.
fn spawn_limited(
    limits: impl FnOnce(&mut order_service::Config, &std::path::Path),
    clock: &ManualClock,
) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let payment = spawn_payment(payment_config());
    let mut order = order_config();
    order.payment_service_url = payment.0.clone();
    limits(&mut order, dir.path());
    let store = match order.database.url {
        Some(_) => Storage::open(order.storage()).expect("a store"),
        None => Storage::InProcess(Arc::new(memory_store(&order))),
    };
    let app = spawn_order_on_clock(order, store, payment, Arc::new(clock.clone()));
    (app, dir)
}

fn with_client_keys(order: &mut order_service::Config, dir: &std::path::Path) {
    let file = dir.join("clients");
    let text = format!("# key name rate\n{FLOOD_KEY} flood 5/s\n{CALM_KEY} calm 100/s\n");
    std::fs::write(&file, text).unwrap();
    order.limits.client_keys = Some(file);
}

async fn order_as(app: &TestApp, authorization: Option<&str>, key: Option<&str>) -> Reply {
    let mut req = app
        .post_orders()
        .insert_header(("Content-Type", "application/json"));
    if let Some(value) = authorization {
        req = req.insert_header(("Authorization", value));
    }
    if let Some(key) = key {
        req = req.insert_header(("Idempotency-Key", key));
    }
    app.send(req, Some(order_body().to_string())).await
}

async fn metrics_text(app: &TestApp) -> String {
    let mut res = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    String::from_utf8(res.body().await.unwrap().to_vec()).unwrap()
}

async fn metric(app: &TestApp, series: &str) -> f64 {
    metrics_text(app)
        .await
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[actix_web::test]
async fn without_limits_anyone_orders_and_no_ratelimit_header_is_sent() {
    let app = spawn_app();
    let reply = order_as(&app, None, None).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.header("ratelimit"), None);
    assert_eq!(reply.header("ratelimit-policy"), None);
}

#[actix_web::test]
async fn with_client_keys_an_order_without_a_known_key_is_refused_and_creates_nothing() {
    let clock = ManualClock::default();
    let (app, _dir) = spawn_limited(with_client_keys, &clock);
    let wrong = [
        None,
        Some("Bearer not-a-client-key-at-all"),
        Some(&format!("Basic {FLOOD_KEY}") as &str),
        Some(&format!("Bearer {FLOOD_KEY}x") as &str),
    ];
    for authorization in wrong {
        let reply = order_as(&app, authorization, None).await;
        reply.assert_problem(401);
        assert_eq!(reply.body["charge"], "none");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        let keyed = order_as(&app, authorization, Some("refused-key")).await;
        keyed.assert_problem(401);
        assert_eq!(keyed.body["charge"], "unknown", "{}", keyed.body);
        assert!(keyed.body["order_id"].is_null());
    }
    assert_eq!(app.payment_requests().await, 0);
    assert_eq!(app.keys_held().await, 0);
    // The same Idempotency-Key, now with a key: a new order, charged once.
    let reply = order_as(
        &app,
        Some(&format!("bearer {CALM_KEY}")),
        Some("refused-key"),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(app.charges().await, 1);
    let refused = r#"order_admissions_total{client="unknown",decision="unauthenticated"}"#;
    assert_eq!(metric(&app, refused).await, 8.0);
}

#[actix_web::test]
async fn a_flooding_client_gets_429_with_ratelimit_headers_while_another_is_unaffected() {
    let clock = ManualClock::default();
    let (app, _dir) = spawn_limited(with_client_keys, &clock);
    let (flood, calm) = (format!("Bearer {FLOOD_KEY}"), format!("Bearer {CALM_KEY}"));
    let mut flood_answers = Vec::new();
    for i in 0..20 {
        let key = format!("flood-{i}");
        flood_answers.push(order_as(&app, Some(&flood), Some(&key)).await);
        let reply = order_as(&app, Some(&calm), None).await;
        assert_eq!(
            reply.status, 201,
            "the calm client's order {i}: {}",
            reply.body
        );
    }
    let statuses: Vec<u16> = flood_answers.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(statuses, [[201; 5].as_slice(), &[429; 15]].concat());
    // Admitted answers say what is left; refusals when to come back.
    assert_eq!(
        flood_answers[0].header("ratelimit-policy"),
        Some("\"orders\";q=5;w=1")
    );
    assert_eq!(
        flood_answers[0].header("ratelimit"),
        Some("\"orders\";r=4;t=1")
    );
    for refused in &flood_answers[5..] {
        refused.assert_problem(429);
        // Keyed: an earlier request with the key may have charged.
        assert_eq!(refused.body["charge"], "unknown");
        assert_eq!(
            refused.body["type"],
            "urn:reliable-orders:problem:rate-limited"
        );
        assert_eq!(refused.header("retry-after"), Some("1"));
        assert_eq!(refused.header("ratelimit"), Some("\"orders\";r=0;t=1"));
        assert_eq!(
            refused.header("ratelimit-policy"),
            Some("\"orders\";q=5;w=1")
        );
    }
    let unkeyed = order_as(&app, Some(&flood), None).await;
    unkeyed.assert_problem(429);
    assert_eq!(unkeyed.body["charge"], "none");
    // 5 + 20 charges: none for a refusal.
    assert_eq!(app.charges().await, 25);
    // The five keyed orders let in hold their keys; no refusal holds one.
    assert_eq!(app.keys_held().await, 5);

    // A refused key is not spent: 200 ms on, one more comes in, under it.
    clock.advance(Duration::from_millis(200));
    let retried = order_as(&app, Some(&flood), Some("flood-5")).await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    assert!(retried.header("idempotent-replayed").is_none());
    assert_eq!(app.charges().await, 26);
    let limited = r#"order_admissions_total{client="flood",decision="limited"}"#;
    assert_eq!(metric(&app, limited).await, 16.0);
    let admitted = r#"order_admissions_total{client="calm",decision="admitted"}"#;
    assert_eq!(metric(&app, admitted).await, 20.0);
    // Keys never appear in metrics.
    let text = metrics_text(&app).await;
    assert!(!text.contains(FLOOD_KEY) && !text.contains(CALM_KEY));
}

#[actix_web::test]
async fn per_address_limits_believe_forwarded_addresses_only_from_trusted_proxies() {
    let clock = ManualClock::default();
    let per_ip = |order: &mut order_service::Config, _: &std::path::Path| {
        order.limits.rate_limit_per_ip = Some("2/s:2".parse().unwrap());
    };
    let (app, _dir) = spawn_limited(per_ip, &clock);
    // From an untrusted peer, X-Forwarded-For is ignored: one address.
    let mut statuses = Vec::new();
    for i in 0..3 {
        let req = app
            .post_orders()
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("X-Forwarded-For", format!("10.0.0.{i}")));
        statuses.push(app.send(req, Some(order_body().to_string())).await.status);
    }
    assert_eq!(statuses, [201, 201, 429]);

    let trusted = |order: &mut order_service::Config, _: &std::path::Path| {
        order.limits.rate_limit_per_ip = Some("2/s:2".parse().unwrap());
        order.limits.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    };
    let (app, _dir) = spawn_limited(trusted, &clock);
    let from = |forwarded: &'static str| {
        let req = app
            .post_orders()
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("X-Forwarded-For", forwarded));
        app.send(req, Some(order_body().to_string()))
    };
    let mut statuses = Vec::new();
    // The client is the last hop before the trusted proxies; what it
    // claims before that is its own business.
    for forwarded in [
        "10.0.0.1",
        "6.6.6.6, 10.0.0.1",
        "10.0.0.1, 127.0.0.1",
        "10.0.0.2",
        // A port after the address, or a trailing comma, changes nobody.
        "10.0.0.2:5000",
        "10.0.0.2:6000,",
    ] {
        statuses.push(from(forwarded).await.status);
    }
    assert_eq!(statuses, [201, 201, 429, 201, 201, 429]);
    let body: Value = from("10.0.0.1").await.body;
    assert_eq!(body["charge"], "none");
}

#[test]
fn client_keys_and_a_per_address_limit_are_one_or_the_other() {
    use clap::Parser;
    let both = order_service::Config::try_parse_from([
        "order-service",
        "--client-keys",
        "clients",
        "--rate-limit-per-ip",
        "5/s",
    ]);
    assert!(both.is_err());
    let bad = order_service::Config::try_parse_from(["order-service", "--rate-limit-per-ip", "5"]);
    assert!(bad.is_err());
}

/// The one await the limiter adds is the drain of a refused request's
/// body: a client that resets its connection there (headers and part of a
/// keyed body sent, the rest never) leaves no key, no order, no charge,
/// and its key is free for the retry.
#[actix_web::test]
async fn a_client_that_hangs_up_while_its_refused_body_is_drained_leaves_nothing() {
    use tokio::io::AsyncWriteExt;
    let clock = ManualClock::default();
    let (app, _dir) = spawn_limited(with_client_keys, &clock);
    let flood = format!("Bearer {FLOOD_KEY}");
    for _ in 0..5 {
        assert_eq!(order_as(&app, Some(&flood), None).await.status, 201);
    }
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /orders HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Authorization: {flood}\r\nIdempotency-Key: cut-key\r\nContent-Length: 1000\r\n\r\n\
         {{\"merchant_id\""
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Refused, and now waiting for the rest of the body.
    let limited = r#"order_admissions_total{client="flood",decision="limited"}"#;
    crate::helpers::eventually("the request is refused", || async {
        metric(&app, limited).await == 1.0
    })
    .await;
    stream.set_zero_linger().unwrap();
    drop(stream);

    assert_eq!(app.keys_held().await, 0);
    assert_eq!(app.charges().await, 5);
    clock.advance(Duration::from_millis(200));
    let retry = order_as(&app, Some(&flood), Some("cut-key")).await;
    assert_eq!(retry.status, 201, "{}", retry.body);
    assert!(retry.header("idempotent-replayed").is_none());
    assert_eq!(app.charges().await, 6);
}

/// The edge's refusals never wait on the order store: with PostgreSQL
/// unreachable, a missing key is 401 and a client over its limit 429, at
/// once, saying `none` without a key and `unknown` with one; nothing
/// reaches payment, and no statement was sent that could commit later.
#[actix_web::test]
async fn refusals_at_the_edge_are_answered_and_true_while_the_database_is_down() {
    let clock = ManualClock::default();
    let down = |order: &mut order_service::Config, dir: &std::path::Path| {
        with_client_keys(order, dir);
        order.database.url = Some(format!(
            "{}/orders",
            crate::helpers::closed_port_url().replace("http://", "postgres://postgres@")
        ));
        order.database.timeout_ms = 500;
    };
    let (app, _dir) = spawn_limited(down, &clock);
    let no_key = order_as(&app, None, None).await;
    no_key.assert_problem(401);
    assert_eq!(no_key.body["charge"], "none");
    let flood = format!("Bearer {FLOOD_KEY}");
    // The five the bucket lets in meet the database that is down.
    for _ in 0..5 {
        let reply = order_as(&app, Some(&flood), None).await;
        reply.assert_problem(503);
        assert_eq!(reply.body["charge"], "none");
    }
    let limited = order_as(&app, Some(&flood), None).await;
    limited.assert_problem(429);
    assert_eq!(limited.body["charge"], "none");
    let keyed = order_as(&app, Some(&flood), Some("k-down")).await;
    keyed.assert_problem(429);
    assert_eq!(keyed.body["charge"], "unknown");
    assert_eq!(app.payment_requests().await, 0);
}
