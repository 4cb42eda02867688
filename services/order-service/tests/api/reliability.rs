//! The reliability pipeline against a real payment-service misbehaving on
//! demand: retries, the circuit breaker, the timeout budget, the bulkhead.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use actors::circuit_breaker::{State, TripReason};
use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::{
    TestApp, order_body, order_config, payment_at_its_latencies, payment_config,
    reconciling_order_config, spawn_app_with,
};

/// Orders one after another; the (status, body) of each.
async fn place_orders(app: &TestApp, n: usize) -> Vec<crate::helpers::Reply> {
    let mut replies = Vec::with_capacity(n);
    for _ in 0..n {
        replies.push(app.post_order(&order_body()).await);
    }
    replies
}

#[actix_web::test]
async fn retries_carry_orders_through_30_percent_errors_without_double_charges() {
    let mut payment = payment_config();
    payment.faults.error_pct = 30;
    payment.fault_seed = Some(30);
    let mut order = order_config();
    order.breaker.consecutive_failures = 1000;
    order.retry.seed = Some(30);
    let app = spawn_app_with(order, payment);

    let replies = place_orders(&app, 200).await;
    let created: Vec<_> = replies.iter().filter(|r| r.status == 201).collect();
    assert!(
        created.len() >= 190,
        "only {} of 200 succeeded",
        created.len()
    );
    for reply in &replies {
        assert!(matches!(reply.status.as_u16(), 201 | 502), "{}", reply.body);
    }
    let audit = app.get_payment("/ledger?detail=true").await.body;
    assert_eq!(audit["duplicates"], json!([]));
    assert_eq!(
        audit["charges"].as_u64().unwrap() as usize,
        created.len(),
        "one charge per success"
    );
    let charged: std::collections::HashSet<_> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["transaction_id"].as_str().unwrap().to_owned())
        .collect();
    for reply in created {
        assert!(charged.contains(reply.body["transaction_id"].as_str().unwrap()));
    }
    assert!(app.payment_requests().await > 200, "retries happened");
    assert_eq!(app.breaker().await.state, State::Closed);
}

#[actix_web::test]
async fn at_80_percent_errors_the_breaker_opens_and_then_spares_payment() {
    let mut payment = payment_config();
    payment.faults.error_pct = 80;
    payment.fault_seed = Some(80);
    let app = spawn_app_with(order_config(), payment);

    let mut opened_after = None;
    for n in 1..=10 {
        let reply = app.post_order(&order_body()).await;
        if reply.status == 503 {
            assert_eq!(
                reply.body["type"],
                "urn:reliable-orders:problem:circuit-open"
            );
            opened_after = Some(n);
            break;
        }
    }
    let opened_after = opened_after.expect("the breaker opened within 10 orders");
    assert!(opened_after <= 5, "opened only after {opened_after} orders");
    assert_eq!(app.breaker().await.state, State::Open);

    let before = app.payment_requests().await;
    for reply in place_orders(&app, 20).await {
        reply.assert_problem(503);
        let retry_after: u64 = reply.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=30).contains(&retry_after));
        let id = reply.body["order_id"].as_str().unwrap();
        assert_eq!(
            app.get(&format!("/orders/{id}")).await.body["status"],
            "failed"
        );
    }
    assert_eq!(
        app.payment_requests().await,
        before,
        "no request reached payment"
    );
}

#[actix_web::test]
async fn with_payment_down_the_open_breaker_fails_fast_and_sends_nothing() {
    let app = spawn_app_with(order_config(), payment_config());
    assert_eq!(app.post_order(&order_body()).await.status, 201);
    let payment_port: u16 = app
        .payment_address
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    app.handles[0].stop(true).await;

    // Refused connections are downstream failures: the breaker opens.
    let mut statuses = Vec::new();
    while app.breaker().await.state != State::Open {
        let reply = app.post_order(&order_body()).await;
        assert!(statuses.len() < 10, "breaker still closed: {statuses:?}");
        statuses.push(reply.status.as_u16());
    }
    // 502 while attempts fail; 503 for an order whose retry met the open breaker.
    assert!(
        statuses.iter().all(|&s| s == 502 || s == 503),
        "{statuses:?}"
    );
    assert_eq!(statuses[0], 502);

    // Listen where payment was, and count who knocks.
    let listener = TcpListener::bind(("127.0.0.1", payment_port)).expect("payment's port is free");
    listener.set_nonblocking(true).unwrap();
    for _ in 0..20 {
        let started = Instant::now();
        let reply = app.post_order(&order_body()).await;
        reply.assert_problem(503);
        assert!(started.elapsed() < Duration::from_millis(50), "fails fast");
        assert!(reply.header("retry-after").is_some());
    }
    assert!(
        listener.accept().is_err(),
        "no connection reached payment's port"
    );
}

#[actix_web::test]
async fn the_breaker_recovers_through_half_open_when_payment_comes_back() {
    let mut order = order_config();
    order.breaker.open_ms = 200;
    // The orders left pending meanwhile would be re-driven through the
    // same breaker, and could take the half-open trials this test counts.
    order.reconciler.interval_ms = 60_000;
    let app = spawn_app_with(order, payment_config());
    app.set_faults(json!({"error_pct": 100})).await;
    while app.breaker().await.state != State::Open {
        app.post_order(&order_body()).await;
    }
    app.set_faults(json!({})).await;

    // Wait for the probe time on the breaker's own report, then order.
    while app.breaker().await.next_probe_in_ms.unwrap_or(0) > 0 {
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    for _ in 0..3 {
        let reply = app.post_order(&order_body()).await;
        // On failure, the breaker's status says which trial rule refused it.
        assert_eq!(
            reply.status,
            201,
            "{} {:?}",
            reply.body,
            app.breaker().await
        );
    }
    let status = app.breaker().await;
    assert_eq!(status.state, State::Closed);
    assert_eq!(
        status.last_transition,
        Some(TripReason::TrialsSucceeded { trials: 3 })
    );
    assert_eq!(app.post_order(&order_body()).await.status, 201);
}

#[actix_web::test]
async fn a_payment_slower_than_the_budget_is_a_prompt_504() {
    let mut payment = payment_config();
    payment.faults.delay_ms = 600;
    let app = spawn_app_with(order_config(), payment);
    let started = Instant::now();
    let reply = app.post_order(&order_body()).await;
    let elapsed = started.elapsed();
    reply.assert_problem(504);
    assert!(elapsed < Duration::from_millis(500 + 100), "{elapsed:?}");
    let id = reply.body["order_id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/orders/{id}")).await.body["status"],
        "pending"
    );
    assert_eq!(
        app.charges().await,
        0,
        "payment refused work it could not finish in time"
    );
}

#[actix_web::test]
async fn fail_after_charge_with_retries_never_charges_an_order_twice() {
    let mut payment = payment_config();
    payment.faults.fail_after_charge_pct = 50;
    payment.fault_seed = Some(50);
    let mut order = order_config();
    order.breaker.consecutive_failures = 1000;
    order.breaker.min_calls = 1000;
    let app = spawn_app_with(order, payment);

    let replies = place_orders(&app, 60).await;
    let audit = app.get_payment("/ledger?detail=true").await.body;
    assert_eq!(audit["duplicates"], json!([]), "no order charged twice");
    let entries = audit["entries"].as_array().unwrap();
    for reply in &replies {
        let id = reply.body["order_id"].as_str().unwrap();
        let charges = entries.iter().filter(|c| c["order_id"] == id).count();
        match reply.status.as_u16() {
            201 => {
                assert_eq!(charges, 1);
                let charge = entries.iter().find(|c| c["order_id"] == id).unwrap();
                assert_eq!(charge["transaction_id"], reply.body["transaction_id"]);
            }
            502 => {
                assert!(charges <= 1);
                assert_eq!(
                    app.get(&format!("/orders/{id}")).await.body["status"],
                    "pending"
                );
            }
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    let created = replies.iter().filter(|r| r.status == 201).count();
    assert!(
        created >= 40,
        "retries rescued most orders: {created} of 60"
    );
}

/// 100 clients, each sending its next order when answered, on 10 permits
/// of ~26 ms: a standing queue of ~90, each waiting ~240 ms, ~300 in a
/// debug build. With a 1 s budget (the wait may take 600 ms of it, 400 are
/// kept for the call) the bulkhead serves them all, where a fixed 250 ms
/// wait refused many; and local overload never trips the breaker.
/// (`make bench-overload` measures the same at the default 500 ms budget,
/// in a release build.)
#[actix_web::test]
async fn a_hundred_clients_on_ten_permits_are_all_served_and_never_trip_the_breaker() {
    let payment = payment_at_its_latencies();
    let mut order = order_config();
    order.retry.timeout_ms = 1_000;
    let app = spawn_app_with(order, payment);

    let client = |_| async {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            let reply = app.post_order(&order_body()).await;
            seen.push((reply, started.elapsed()));
        }
        seen
    };
    let results: Vec<_> = join_all((0..100).map(client))
        .await
        .into_iter()
        .flatten()
        .collect();
    let slowest = results.iter().map(|(_, elapsed)| *elapsed).max();
    for (reply, _) in &results {
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    println!("closed overload: 300 created, the slowest in {slowest:?}");
    let breaker = app.breaker().await;
    assert_eq!(breaker.state, State::Closed);
    assert_eq!(
        breaker.transitions, 0,
        "local overload never trips the breaker"
    );
}

/// Payment slowing sevenfold (~26 to ~176 ms a call) under a standing
/// queue: 20 clients on 2 permits, each waiting ~230 ms as 100 clients on
/// 10 permits do, at a fifth of the load on the machine. The first slow
/// calls go to callers whose waits were planned from the fast calls
/// before; those that run out of time (payment answers 504 at once to a
/// deadline it cannot meet) had less than two fifths of the budget, which
/// says nothing about payment. The breaker stays closed: our own queue is
/// not payment failing. (How many run out of time depends on the machine,
/// 0 to 7 in my runs; the permits' ages that keep it low are proven in the
/// bulkhead's unit tests.)
#[actix_web::test]
async fn payment_slowing_sevenfold_under_a_standing_queue_never_trips_the_breaker() {
    let mut order = order_config();
    order.bulkhead.max = 2;
    let app = spawn_app_with(order, payment_at_its_latencies());
    let slowed = Instant::now() + Duration::from_secs(1);
    let end = slowed + Duration::from_secs(2);
    let client = |_| async {
        let mut seen = Vec::new();
        while Instant::now() < end {
            seen.push(app.post_order(&order_body()).await);
        }
        seen
    };
    let slow_down = async {
        tokio::time::sleep_until(tokio::time::Instant::from_std(slowed)).await;
        app.set_faults(json!({"delay_ms": 150})).await;
    };
    let (replies, ()) = futures_util::join!(join_all((0..20).map(client)), slow_down);
    let (mut created, mut refused, mut timed_out) = (0, 0, 0);
    for reply in replies.iter().flatten() {
        match (reply.status.as_u16(), reply.body["type"].as_str()) {
            (201, _) => created += 1,
            (503, Some("urn:reliable-orders:problem:bulkhead-full")) => {
                assert_eq!(reply.body["charge"], "none");
                refused += 1;
            }
            (504, Some("urn:reliable-orders:problem:payment-timeout")) => timed_out += 1,
            (other, _) => panic!("{other}: {}", reply.body),
        }
    }
    println!("payment slowing: {created} created, {refused} refused, {timed_out} timed out");
    let breaker = app.breaker().await;
    assert_eq!(breaker.transitions, 0, "{:?}", breaker.last_transition);
    let charges = app.charges().await;
    assert!(
        charges >= created && charges <= created + timed_out,
        "{charges}"
    );
}

/// Orders arriving at twice what the permits serve, whatever the answers
/// (an open model): the bulkhead sees its queue grow and cuts every wait to
/// its overload wait (100 ms), so the orders it admits keep their latency
/// and the others are refused soon after, nothing charged. (With the fixed
/// 250 ms wait of before, an admitted order had waited ~250 ms.)
#[actix_web::test]
async fn arrivals_at_twice_capacity_are_shed_and_admitted_orders_keep_their_latency() {
    let payment = payment_at_its_latencies();
    let mut order = order_config();
    order.bulkhead.max = 2;
    let app = spawn_app_with(order, payment);
    // Two permits of ~26 ms serve ~75 orders a second; send ~160 for 3 s.
    let mut ticks = tokio::time::interval(Duration::from_millis(6));
    let mut sent = Vec::new();
    for _ in 0..500 {
        ticks.tick().await;
        let started = Instant::now();
        let reply = app.post_order_in_background(None, &order_body());
        sent.push(actix_rt::spawn(async move {
            (reply.await.unwrap(), started.elapsed())
        }));
    }
    let mut served = Vec::new();
    let mut refused = 0;
    for answer in join_all(sent).await {
        let (reply, elapsed) = answer.unwrap();
        match reply.status.as_u16() {
            201 => served.push(elapsed),
            503 => {
                assert_eq!(
                    reply.body["type"],
                    "urn:reliable-orders:problem:bulkhead-full"
                );
                assert_eq!(reply.body["charge"], "none");
                refused += 1;
            }
            other => panic!("{other}: {}", reply.body),
        }
    }
    served.sort();
    let (p50, p90) = (served[served.len() / 2], served[served.len() * 9 / 10]);
    println!(
        "open overload: {} served (p50 {p50:?}, p90 {p90:?}), {refused} refused",
        served.len()
    );
    assert!(refused > 100, "the excess is shed: {refused} refused");
    // Unshed, the queue would fill until waits reach what the budget
    // allows (375 ms) and every admitted order would wait about that long.
    // The median, not the tail: with the whole suite running on two
    // cores, the tail is the machine's (p90 135-345 ms, old code and new).
    assert!(
        p50 < Duration::from_millis(200),
        "admitted orders keep their latency: p50 {p50:?}"
    );
    assert_eq!(app.charges().await, served.len() as u64);
    assert_eq!(app.breaker().await.transitions, 0);
}

/// Polls `GET /orders/{id}` until its status is `want` (bounded).
async fn await_status(app: &TestApp, id: &str, want: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let order = app.get(&format!("/orders/{id}")).await.body;
        if order["status"] == want {
            return order;
        }
        assert!(
            Instant::now() < deadline,
            "order {id} never became {want}: {order}"
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn the_reconciler_completes_an_order_whose_charge_answer_was_lost() {
    let app = spawn_app_with(reconciling_order_config(), payment_config());
    app.set_faults(json!({"fail_after_charge_pct": 100})).await;
    let reply = app.post_order(&order_body()).await;
    reply.assert_problem(502);
    let id = reply.body["order_id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get(&format!("/orders/{id}")).await.body["status"],
        "pending"
    );

    // While payment keeps failing after charging, the order stays pending.
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.get(&format!("/orders/{id}")).await.body["status"],
        "pending"
    );
    app.set_faults(json!({})).await;
    let completed = await_status(&app, &id, "completed").await;
    let charge = app.get_payment(&format!("/charges/{id}")).await.body;
    assert_eq!(completed["transaction_id"], charge["transaction_id"]);
    assert_eq!(
        app.charges().await,
        1,
        "re-driven under the same key: no second charge"
    );
}

#[actix_web::test]
async fn the_reconciler_charges_an_order_whose_budget_ran_out() {
    let mut order = order_config();
    order.reconciler.interval_ms = 50;
    let mut payment = payment_config();
    payment.faults.delay_ms = 600;
    let app = spawn_app_with(order, payment);
    let reply = app.post_order(&order_body()).await;
    reply.assert_problem(504);
    let id = reply.body["order_id"].as_str().unwrap().to_owned();
    assert_eq!(app.charges().await, 0);
    app.set_faults(json!({})).await;
    await_status(&app, &id, "completed").await;
    assert_eq!(app.charges().await, 1);
}

#[actix_web::test]
async fn a_client_retry_joins_the_order_the_reconciler_is_settling() {
    let mut order = order_config();
    order.reconciler.interval_ms = 50;
    let app = spawn_app_with(order, payment_config());
    app.set_faults(json!({"fail_after_charge_pct": 100})).await;
    let first = app.post_order_with_key("joined", &order_body()).await;
    first.assert_problem(502);
    app.set_faults(json!({})).await;
    // Retry at once, racing the reconciler: one order, one charge.
    let retried = app.post_order_with_key("joined", &order_body()).await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    assert_eq!(retried.body["order_id"], first.body["order_id"]);
    let id = first.body["order_id"].as_str().unwrap();
    await_status(&app, id, "completed").await;
    // Give the reconciler a few rounds to do anything it would do.
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.charges().await, 1);
}
