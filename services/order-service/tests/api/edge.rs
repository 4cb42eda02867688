//! The edge: what a client can send that the services must refuse, bound
//! or keep to themselves (docs/contract.md §9).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::helpers::{order_body, order_config, payment_config, spawn_app, spawn_app_with};

#[actix_web::test]
async fn invented_methods_share_one_metric_label() {
    let app = spawn_app();
    for n in 0..50 {
        let method =
            actix_web::http::Method::from_bytes(format!("INVENTED{n}").as_bytes()).unwrap();
        let reply = app
            .client
            .request(method, format!("{}/orders", app.address))
            .send()
            .await
            .unwrap();
        assert!(reply.status().is_client_error(), "{}", reply.status());
    }
    let mut metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    let text = String::from_utf8(metrics.body().limit(1 << 22).await.unwrap().to_vec()).unwrap();
    assert!(!text.contains("INVENTED"), "a series per invented method");
    let other = text
        .lines()
        .find(|l| l.starts_with("http_server_requests_total{") && l.contains(r#"method="_OTHER""#))
        .expect("the invented methods, counted as _OTHER");
    assert!(other.ends_with(" 50"), "{other}");
}

#[actix_web::test]
async fn a_known_path_with_another_method_is_405_naming_the_allowed_ones() {
    use actix_web::http::Method;
    let app = spawn_app();
    let cases = [
        (Method::DELETE, format!("{}/orders", app.address), "POST"),
        (
            Method::PATCH,
            format!("{}/orders/{}", app.address, uuid::Uuid::new_v4()),
            "GET",
        ),
        (Method::POST, format!("{}/health", app.address), "GET"),
        (
            Method::PUT,
            format!("{}/metrics", app.payment_address),
            "GET",
        ),
        (
            Method::DELETE,
            format!("{}/health", app.payment_address),
            "GET",
        ),
    ];
    for (method, url, allow) in cases {
        let reply = app
            .send(app.client.request(method.clone(), &url), None)
            .await;
        reply.assert_problem(405);
        assert_eq!(reply.header("allow"), Some(allow), "{method} {url}");
    }
    app.get("/nope").await.assert_problem(404);
}

#[actix_web::test]
async fn a_body_that_trickles_in_is_408_and_creates_nothing() {
    let mut config = order_config();
    config.server.body_timeout_ms = 300;
    let app = spawn_app_with(config, payment_config());
    let address = app.address.trim_start_matches("http://").to_owned();
    let body = order_body().to_string();
    let started = Instant::now();
    let answer = actix_web::rt::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            stream,
            "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
            body.len(),
            &body[..10]
        )
        .unwrap();
        // The rest never comes.
        let mut answer = vec![0; 4096];
        let n = stream.read(&mut answer).unwrap_or(0);
        String::from_utf8_lossy(&answer[..n]).into_owned()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(app.charges().await, 0);
    assert_eq!(app.tracked().await, 0, "no order recorded");
}

#[actix_web::test]
async fn a_hang_up_while_the_body_is_arriving_leaves_no_key_and_no_order() {
    // The handler waits in the body read (the await the body timeout now
    // bounds) when the client resets: nothing may have been reserved yet.
    let app = spawn_app();
    let address = app.address.trim_start_matches("http://").to_owned();
    let body = order_body().to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /orders HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Idempotency-Key: reset-mid-body\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        &body[..10]
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, head.as_bytes())
        .await
        .unwrap();
    crate::hangup::after(Duration::from_millis(50)).await;
    stream.set_zero_linger().unwrap();
    drop(stream);

    assert_eq!(app.keys_in_flight().await, 0);
    assert_eq!(app.tracked().await, 0, "no order recorded");
    assert_eq!(app.charges().await, 0);
    // The key is free: the retry creates the order, charged once.
    let retry = app
        .post_order_with_key("reset-mid-body", &order_body())
        .await;
    assert_eq!(retry.status, 201, "{}", retry.body);
    assert_eq!(app.charges().await, 1);
}

#[actix_web::test]
async fn the_in_memory_store_forgets_the_oldest_settled_orders_and_never_a_pending_one() {
    let mut config = order_config();
    config.database.orders_max = 3;
    config.breaker.consecutive_failures = 1000;
    let app = spawn_app_with(config, payment_config());
    let mut completed = Vec::new();
    for _ in 0..5 {
        let reply = app.post_order(&order_body()).await;
        assert_eq!(reply.status, 201);
        completed.push(reply.body["order_id"].as_str().unwrap().to_owned());
    }
    for (n, id) in completed.iter().enumerate() {
        let expected = if n < 2 { 404 } else { 200 };
        assert_eq!(
            app.get(&format!("/orders/{id}")).await.status,
            expected,
            "order {n}"
        );
    }

    // Three orders left pending (charged, then answered 500) fill it.
    app.set_faults(serde_json::json!({"fail_after_charge_pct": 100}))
        .await;
    let mut pending = Vec::new();
    for _ in 0..3 {
        let reply = app.post_order(&order_body()).await;
        assert_eq!(reply.status, 502, "{}", reply.body);
        pending.push(reply.body["order_id"].as_str().unwrap().to_owned());
    }
    let requests = app.payment_requests().await;
    let refused = app.post_order(&order_body()).await;
    refused.assert_problem(503);
    assert_eq!(
        refused.body["type"],
        "urn:reliable-orders:problem:order-store-full"
    );
    assert!(refused.header("retry-after").is_some());
    assert_eq!(refused.header("retry-after"), Some("5"));
    // Under a new key, the same problem and the same wait; but the key
    // keeps its order id for the client's retry with it (a try still on
    // its way under the key may charge that order): not "none".
    let keyed = app.post_order_with_key("no-room", &order_body()).await;
    keyed.assert_problem(503);
    assert_eq!(keyed.body["type"], refused.body["type"], "{}", keyed.body);
    assert_eq!(keyed.body["charge"], "unknown", "{}", keyed.body);
    assert_eq!(keyed.header("retry-after"), Some("5"));
    assert_eq!(app.payment_requests().await, requests, "nothing charged");
    let stats = app.key_stats().await;
    assert_eq!((stats.in_flight, stats.released), (0, 1));
    for id in pending {
        let order = app.get(&format!("/orders/{id}")).await;
        assert_eq!(
            order.body["status"], "pending",
            "a pending order is never forgotten"
        );
    }
}

#[actix_web::test]
async fn a_body_that_is_not_a_json_object_is_400_and_creates_nothing() {
    let app = spawn_app();
    for body in [
        r#"["merchant_123", 10, "USD"]"#,
        "[]",
        "10",
        r#""order""#,
        "null",
    ] {
        let req = app
            .post_orders()
            .insert_header(("Content-Type", "application/json"));
        app.send(req, Some(body.to_owned()))
            .await
            .assert_problem(400);
    }
    assert_eq!(app.payment_requests().await, 0);
}

/// Both descriptions are served and name every route, the headers clients
/// act on, and who may call what (the fuzzer in `make fuzz` checks the
/// answers against them).
#[actix_web::test]
async fn both_services_describe_every_route_in_openapi_3_1() {
    let app = spawn_app();
    let order = app.get("/openapi.json").await;
    assert_eq!(order.status, 200);
    assert_eq!(order.body["openapi"], "3.1.0");
    let paths = &order.body["paths"];
    for (path, method) in [
        ("/orders", "post"),
        ("/orders/{id}", "get"),
        ("/health", "get"),
        ("/ready", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
        ("/admin/breaker", "get"),
        ("/admin/breaker", "put"),
        ("/admin/breaker/events", "get"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "order-service {method} {path}"
        );
    }
    let create = &paths["/orders"]["post"];
    let created = &create["responses"]["201"]["headers"];
    assert!(created["Location"].is_object() && created["Idempotent-Replayed"].is_object());
    assert_eq!(create["security"][1]["client_key"], serde_json::json!([]));
    for status in ["409", "429", "503"] {
        assert!(
            create["responses"][status]["headers"]["Retry-After"].is_object(),
            "{status}"
        );
    }
    assert_eq!(create["parameters"][0]["name"], "Idempotency-Key");
    assert_eq!(create["parameters"][0]["required"], false);
    assert_eq!(
        paths["/admin/breaker"]["put"]["security"][0]["admin_token"],
        serde_json::json!([])
    );
    assert_eq!(
        order.body["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );

    let payment = app.get_payment("/openapi.json").await.body;
    assert_eq!(payment["openapi"], "3.1.0");
    for (path, method) in [
        ("/charge", "post"),
        ("/charges/{key}", "get"),
        ("/ledger", "get"),
        ("/admin/faults", "get"),
        ("/admin/faults", "put"),
        ("/health", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            payment["paths"][path][method].is_object(),
            "payment-service {method} {path}"
        );
    }
    let charge = &payment["paths"]["/charge"]["post"];
    assert_eq!(charge["security"][0]["service_key"], serde_json::json!([]));
    assert_eq!(charge["parameters"][0]["name"], "Idempotency-Key");
    assert_eq!(charge["parameters"][0]["required"], true);
    assert!(charge["responses"]["429"]["headers"]["Retry-After"].is_object());
}

/// Found by the attack on issue 13's changes: a keyed order charged (then
/// answered 500), completed by the reconciler and forgotten to make room
/// was re-created from its key as never charged; a breaker refusal then
/// failed it and dropped its key, and the next retry charged a second order.
#[actix_web::test]
async fn a_key_whose_order_was_forgotten_resumes_that_order_as_possibly_charged() {
    use actors::circuit_breaker::Mode;
    let mut config = crate::helpers::reconciling_order_config();
    config.database.orders_max = 3;
    let app = spawn_app_with(config, payment_config());
    app.set_faults(serde_json::json!({"fail_after_charge_pct": 100}))
        .await;
    let first = app.post_order_with_key("kept", &order_body()).await;
    assert_eq!(first.status, 502, "{}", first.body);
    let id = first.body["order_id"].as_str().unwrap().to_owned();
    app.set_faults(serde_json::json!({})).await;
    crate::helpers::eventually("the reconciler completes it", || async {
        app.get(&format!("/orders/{id}")).await.body["status"] == "completed"
    })
    .await;
    for _ in 0..3 {
        assert_eq!(app.post_order(&order_body()).await.status, 201);
    }
    assert_eq!(
        app.get(&format!("/orders/{id}")).await.status,
        404,
        "forgotten"
    );

    app.set_breaker(Mode::ForcedOpen).await;
    let refused = app.post_order_with_key("kept", &order_body()).await;
    refused.assert_problem(409);
    assert_eq!(
        refused.body["charge"], "unknown",
        "charged before: never 'none'"
    );
    assert_eq!(refused.body["order_id"], id.as_str());
    let order = app.get(&format!("/orders/{id}")).await;
    assert_eq!(
        order.body["status"], "pending",
        "possibly charged: never failed"
    );

    app.set_breaker(Mode::Auto).await;
    let retried = app.post_order_with_key("kept", &order_body()).await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    assert_eq!(retried.body["order_id"], id.as_str(), "the same order");
    let charges = app.ledger_entries().await;
    let for_key: Vec<_> = charges
        .iter()
        .filter(|c| c["order_id"] == id.as_str())
        .collect();
    assert_eq!(for_key.len(), 1, "one charge, replayed");
    assert_eq!(
        charges.len(),
        4,
        "the order under the key and the three without"
    );
}

/// The key's order was charged, then forgotten to make room; the store is
/// now full of pending orders. A retry with the key cannot write the order
/// again — and must not say nothing was charged: it was.
#[actix_web::test]
async fn a_key_whose_charged_order_was_forgotten_is_never_answered_nothing_charged() {
    let mut config = crate::helpers::reconciling_order_config();
    config.database.orders_max = 2;
    let app = spawn_app_with(config, payment_config());
    app.set_faults(serde_json::json!({"error_pct": 100})).await;
    let first = app
        .post_order_with_key("charged-then-gone", &order_body())
        .await;
    assert_eq!(first.body["charge"], "unknown", "{}", first.body);
    let id = first.body["order_id"].as_str().unwrap().to_owned();
    app.set_faults(serde_json::json!({})).await;
    crate::helpers::eventually("the reconciler completes it", || async {
        app.get(&format!("/orders/{id}")).await.body["status"] == "completed"
    })
    .await;
    // Two orders that stay pending push it out, and fill the store.
    app.set_faults(serde_json::json!({"error_pct": 100})).await;
    for _ in 0..2 {
        assert_eq!(app.post_order(&order_body()).await.status, 502);
    }
    assert_eq!(app.get(&format!("/orders/{id}")).await.status, 404);

    let retried = app
        .post_order_with_key("charged-then-gone", &order_body())
        .await;
    retried.assert_problem(503);
    assert_eq!(retried.body["charge"], "unknown", "{}", retried.body);

    app.set_faults(serde_json::json!({})).await;
    crate::helpers::eventually("the key's order is found again, charged once", || async {
        let again = app
            .post_order_with_key("charged-then-gone", &order_body())
            .await;
        again.status == 201 && again.body["order_id"] == id.as_str()
    })
    .await;
    let charges = app.ledger_entries().await;
    assert_eq!(
        charges
            .iter()
            .filter(|c| c["order_id"] == id.as_str())
            .count(),
        1
    );
}

/// No room for orders, and concurrent requests under one new key: none is
/// told of an order that does not exist (the key's holder could not write
/// it). Each is told the store is full or the key is in flight, and to
/// retry with the key; nothing is charged.
#[actix_web::test]
async fn requests_under_a_key_with_no_room_for_its_order_name_no_order_that_does_not_exist() {
    let mut config = order_config();
    config.database.orders_max = 3;
    config.breaker.consecutive_failures = 1000;
    config.breaker.min_calls = 1000;
    let app = spawn_app_with(config, payment_config());
    app.set_faults(serde_json::json!({"fail_after_charge_pct": 100}))
        .await;
    for _ in 0..3 {
        assert_eq!(app.post_order(&order_body()).await.status, 502);
    }
    let body = order_body();
    let replies =
        futures_util::future::join_all((0..20).map(|_| app.post_order_with_key("crowded", &body)))
            .await;
    let requests = app.payment_requests().await;
    for reply in replies {
        match reply.status.as_u16() {
            // The first to take the key finds no room; the next ones
            // resume its order, and find none either.
            503 => assert!(
                reply.body["type"] == "urn:reliable-orders:problem:order-store-full"
                    || reply.body["type"] == "urn:reliable-orders:problem:idempotency-key-unknown",
                "{}",
                reply.body
            ),
            409 => {}
            other => panic!("{other}: {}", reply.body),
        }
        assert_eq!(reply.body["charge"], "unknown", "{}", reply.body);
        if let Some(id) = reply.body["order_id"].as_str() {
            let order = app.get(&format!("/orders/{id}")).await;
            assert_eq!(order.status, 200, "{} names {id}", reply.body);
        }
    }
    assert_eq!(app.payment_requests().await, requests, "nothing charged");
}

/// Refusals for a full store leave nothing for the reconciler: before,
/// each one stayed tracked, and thousands of them held up the re-drive of
/// the orders that were really pending.
#[actix_web::test]
async fn refusals_for_a_full_store_leave_the_reconciler_only_the_pending_orders() {
    let mut config = order_config();
    config.database.orders_max = 3;
    config.breaker.consecutive_failures = 1000;
    let app = spawn_app_with(config, payment_config());
    app.set_faults(serde_json::json!({"fail_after_charge_pct": 100}))
        .await;
    for _ in 0..3 {
        assert_eq!(app.post_order(&order_body()).await.status, 502);
    }
    crate::helpers::eventually("the three are tracked", || async {
        app.tracked().await == 3
    })
    .await;
    for i in 0..50 {
        let unkeyed = app.post_order(&order_body()).await;
        unkeyed.assert_problem(503);
        assert_eq!(
            unkeyed.body["type"],
            "urn:reliable-orders:problem:order-store-full"
        );
        assert_eq!(unkeyed.body["charge"], "none");
        // Under a new key, the same problem; the key keeps its order for a
        // retry: not "none".
        let keyed = app
            .post_order_with_key(&format!("full-{i}"), &order_body())
            .await;
        keyed.assert_problem(503);
        assert_eq!(keyed.body["type"], unkeyed.body["type"]);
        assert_eq!(keyed.body["charge"], "unknown");
    }
    crate::helpers::eventually("only the pending orders are tracked", || async {
        app.tracked().await == 3
    })
    .await;
}
