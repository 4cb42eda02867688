//! loadgen against the real services: what it tells a user about a run
//! (the audit, the breaker's band) must be what happened.

use std::time::{Duration, Instant};

use clap::Parser;
use loadgen::cli::{Args, normalize_args};
use loadgen::engine::{Plan, run};
use loadgen::report::Report;
use serde_json::json;

use crate::helpers::{
    ADMIN_TOKEN, eventually, order_config, payment_config, reconciling_order_config, spawn_app,
    spawn_app_with,
};

/// Runs loadgen with `line` on a runtime of its own, off the thread that
/// serves the apps and runs their actors.
async fn load(line: String) -> Report {
    actix_web::rt::task::spawn_blocking(move || {
        let args = Args::try_parse_from(normalize_args(line.split_whitespace().map(str::to_owned)))
            .unwrap();
        let plan = Plan::from_args(&args).unwrap();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
            .block_on(run(plan))
    })
    .await
    .unwrap()
}

fn unix_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[actix_web::test]
async fn the_audit_of_a_second_run_on_the_same_ledger_reports_no_anomaly() {
    let app = spawn_app();
    let line = format!(
        "loadgen -url {}/orders -n 40 -c 4 -idempotent --audit {} --admin-token {ADMIN_TOKEN}",
        app.address, app.payment_address
    );
    let first = load(line.clone()).await;
    assert_eq!(first.successful, 40);
    let second = load(line).await.audit.unwrap();
    assert_eq!(second.ledger_charges, 80, "{second:?}");
    assert_eq!(second.run_charges, 40, "only this run's: {second:?}");
    assert_eq!(
        (second.created_seen, second.created_with_one_charge),
        (40, 40),
        "{second:?}"
    );
    assert_eq!(second.created_without_charge, 0, "{second:?}");
    assert_eq!(second.charges_without_created, 0, "{second:?}");
    assert_eq!(second.duplicate_charges, 0, "{second:?}");
    assert!(second.unseen_orders_now.is_empty(), "{second:?}");
}

#[actix_web::test]
async fn charges_without_a_201_are_reported_with_their_orders_status_now() {
    let app = spawn_app_with(reconciling_order_config(), payment_config());
    // Payment charges, then answers 500: the client gets 502, the order
    // stays pending, and its charge exists.
    app.set_faults(json!({"fail_after_charge_pct": 100})).await;
    let since = unix_ms();
    let report = load(format!(
        "loadgen -url {}/orders -n 10 -c 2 -idempotent --audit {} --admin-token {ADMIN_TOKEN}",
        app.address, app.payment_address
    ))
    .await;
    assert_eq!(report.status_codes["502"], 10);
    assert_eq!(report.charge_answers, [("unknown".to_owned(), 10)].into());
    let audit = report.audit.unwrap();
    assert_eq!(audit.charges_without_created, 10, "{audit:?}");
    assert_eq!(audit.duplicate_charges, 0, "{audit:?}");
    assert_eq!(
        audit.unseen_orders_now,
        [("pending".to_owned(), 10)].into(),
        "{audit:?}"
    );

    // Payment heals; the reconciler completes them under the same keys,
    // and the audit now says so.
    app.set_faults(json!({})).await;
    let orders = loadgen::client::Target::parse(&format!("{}/orders", app.address)).unwrap();
    eventually("the reconciler completes the 10 orders", || async {
        let audit = loadgen::audit::audit(
            &app.payment_address,
            Some(ADMIN_TOKEN),
            &orders,
            &[],
            &[],
            since,
        )
        .await
        .unwrap();
        audit.unseen_orders_now == [("completed".to_owned(), 10)].into()
            && audit.duplicate_charges == 0
            && audit.run_charges == 10
    })
    .await;
}

/// Refusals say nothing was charged: the audit holds each of those
/// orders against the ledger.
#[actix_web::test]
async fn the_audit_counts_the_answers_that_said_nothing_was_charged_and_finds_no_lie() {
    let app = spawn_app();
    app.set_breaker(actors::circuit_breaker::Mode::ForcedOpen)
        .await;
    let report = load(format!(
        "loadgen -url {}/orders -n 10 -c 2 --audit {} --admin-token {ADMIN_TOKEN}",
        app.address, app.payment_address
    ))
    .await;
    assert_eq!(report.status_codes["503"], 10);
    assert_eq!(report.charge_answers, [("none".to_owned(), 10)].into());
    let audit = report.audit.unwrap();
    assert_eq!((audit.answered_none, audit.answered_none_charged), (10, 0));
}

#[actix_web::test]
async fn the_breaker_band_matches_a_run_with_the_breaker_forced_open_for_its_middle_third() {
    let mut config = order_config();
    config.server.admin_token = Some("order-admin".into());
    let app = spawn_app_with(config, payment_config());
    let set_mode = |mode: &'static str| {
        let request = app
            .client
            .put(format!("{}/admin/breaker", app.address))
            .insert_header(("Authorization", "Bearer order-admin"))
            .insert_header(("Content-Type", "application/json"));
        async move {
            let reply = request
                .send_body(format!(r#"{{"mode":"{mode}"}}"#))
                .await
                .unwrap();
            assert_eq!(reply.status(), 200);
        }
    };
    let line = format!(
        "loadgen --url {0}/orders --rate 50 --duration 3s -c 4 --breaker {0} --admin-token order-admin",
        app.address
    );
    let started = Instant::now();
    let run = actix_rt::spawn(load(line));
    actix_rt::time::sleep_until((started + Duration::from_secs(1)).into()).await;
    set_mode("forced_open").await;
    let opened_ms = started.elapsed().as_millis() as u64;
    actix_rt::time::sleep_until((started + Duration::from_secs(2)).into()).await;
    set_mode("auto").await;
    let closed_ms = started.elapsed().as_millis() as u64;
    let report = run.await.unwrap();

    // Followed on the event stream: closed, open, closed, each change
    // within a little of when it was made (loadgen started a little after
    // `started`, so its times are a little earlier).
    let changes = report.breaker.clone().expect("the breaker was followed");
    let states: Vec<&str> = changes.iter().map(|c| c.state.as_str()).collect();
    assert_eq!(states, ["closed", "open", "closed"], "{changes:?}");
    let near = |at: u64, want: u64| at <= want + 50 && at + 300 >= want;
    assert!(near(changes[1].at_ms, opened_ms), "{changes:?} {opened_ms}");
    assert!(near(changes[2].at_ms, closed_ms), "{changes:?} {closed_ms}");

    // Read off the answers: refusals in the middle third only, every order
    // of its inner buckets refused, none in the outer thirds.
    let (open_from, open_to) = (changes[1].at_ms, changes[2].at_ms);
    for b in &report.timeline {
        let (from, to) = (b.start_ms, b.start_ms + b.width_ms);
        if from >= open_from + 100 && to + 100 <= open_to {
            assert!(b.breaker_refused > 0 && b.ok == 0, "{b:?} inside");
        }
        if to + 100 <= open_from || from >= open_to + 100 {
            assert_eq!(b.breaker_refused, 0, "{b:?} outside");
        }
    }
    let svg = loadgen::timeline::render(&report, "forced open");
    assert_eq!(svg.matches("class=\"breaker-open\"").count(), 1);
    assert_eq!(svg.matches("class=\"breaker-closed\"").count(), 2);
}
