//! Each fault changed through `/admin/faults` takes effect on the very next
//! request, without a restart.

use std::time::Instant;

use serde_json::json;

use crate::helpers::{charge_body, config, new_order_id, no_faults, spawn};

const TOKEN: &str = "test-token";

#[actix_web::test]
async fn every_fault_takes_effect_on_the_next_request() {
    let mut config = config();
    config.server.admin_token = Some(TOKEN.into());
    let app = spawn(config);
    let order = new_order_id();

    let reply = app.put_faults(json!({"error_pct": 100}), Some(TOKEN)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        json!({"delay_ms":0,"error_pct":100,"rate_limit_pct":0,"fail_after_charge_pct":0})
    );
    app.charge(&order, charge_body(&order, "1.00"))
        .await
        .assert_problem(500);
    assert_eq!(app.charges().await, 0, "errors strike before the charge");

    app.put_faults(json!({"rate_limit_pct": 100}), Some(TOKEN))
        .await;
    let limited = app.charge(&order, charge_body(&order, "1.00")).await;
    limited.assert_problem(429);
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert_eq!(app.charges().await, 0);

    app.put_faults(json!({"delay_ms": 300}), Some(TOKEN)).await;
    let started = Instant::now();
    assert_eq!(
        app.charge(&order, charge_body(&order, "1.00")).await.status,
        201
    );
    assert!(started.elapsed().as_millis() >= 300);
    // The delay is added to every request: an injected failure too.
    app.put_faults(json!({"delay_ms": 300, "error_pct": 100}), Some(TOKEN))
        .await;
    let started = Instant::now();
    app.charge(&order, charge_body(&order, "1.00"))
        .await
        .assert_problem(500);
    assert!(started.elapsed().as_millis() >= 300, "failed fast");

    let other = new_order_id();
    app.put_faults(json!({"fail_after_charge_pct": 100}), Some(TOKEN))
        .await;
    app.charge(&other, charge_body(&other, "2.00"))
        .await
        .assert_problem(500);
    let recorded = app.get(&format!("/charges/{other}")).await;
    assert_eq!(
        recorded.status, 200,
        "the charge exists although the caller saw 500"
    );

    app.put_faults(no_faults(), Some(TOKEN)).await;
    let replay = app.charge(&other, charge_body(&other, "2.00")).await;
    assert_eq!(replay.status, 200);
    assert_eq!(
        replay.body["transaction_id"],
        recorded.body["transaction_id"]
    );
    assert_eq!(app.charges().await, 2);

    let current = app
        .send(
            app.client
                .get(format!("{}/admin/faults", app.address))
                .insert_header(("Authorization", format!("Bearer {TOKEN}"))),
            None,
        )
        .await;
    assert_eq!(current.body, no_faults());
}

#[actix_web::test]
async fn invalid_faults_are_refused_and_change_nothing() {
    let mut config = config();
    config.server.admin_token = Some(TOKEN.into());
    let app = spawn(config);
    app.put_faults(json!({"error_pct": 101}), Some(TOKEN))
        .await
        .assert_problem(422);
    app.put_faults(json!({"error_pct": -1}), Some(TOKEN))
        .await
        .assert_problem(400);
    app.put_faults(json!({"errors": 5}), Some(TOKEN))
        .await
        .assert_problem(400);
    let order = new_order_id();
    assert_eq!(
        app.charge(&order, charge_body(&order, "1.00")).await.status,
        201
    );
}
