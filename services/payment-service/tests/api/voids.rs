//! `POST /charges/{key}/void`: the fence order-service puts on a key it
//! answered "nothing was charged" for. Whichever of a charge and a void
//! the ledger takes first is the key's end, for good.

use crate::helpers::{
    charge_body, config, eventually, new_order_id, respawn_durable, spawn, spawn_durable,
};

#[actix_web::test]
async fn a_voided_key_is_refused_for_good_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.jsonl");
    let app = spawn_durable(&path);
    let order = new_order_id();
    let voided = app.void(&order).await;
    assert_eq!(voided.status, 200, "{}", voided.body);
    assert_eq!(voided.body["state"], "voided");
    assert_eq!(voided.body["void"]["idempotency_key"], order.as_str());
    let again = app.void(&order).await;
    assert_eq!(again.body, voided.body, "a second void answers the first");

    let refused = app.charge(&order, charge_body(&order, "10.00")).await;
    refused.assert_problem(409);
    assert_eq!(
        refused.body["type"],
        "urn:reliable-orders:problem:charge-voided"
    );
    assert_eq!(app.get(&format!("/charges/{order}")).await.status, 404);
    app.stop().await;

    let app = respawn_durable(&path).await;
    app.charge(&order, charge_body(&order, "10.00"))
        .await
        .assert_problem(409);
    let audit = app.get("/ledger").await.body;
    assert_eq!(
        (audit["charges"].as_u64(), audit["voids"].as_u64()),
        (Some(0), Some(1))
    );
}

#[actix_web::test]
async fn a_void_after_the_charge_answers_the_charge_and_changes_nothing() {
    let app = spawn(config());
    let order = new_order_id();
    let charged = app.charge(&order, charge_body(&order, "10.00")).await;
    assert_eq!(charged.status, 201);
    let voided = app.void(&order).await;
    assert_eq!(voided.status, 200);
    assert_eq!(voided.body["state"], "charged");
    assert_eq!(
        voided.body["charge"]["transaction_id"],
        charged.body["transaction_id"]
    );
    let replayed = app.charge(&order, charge_body(&order, "10.00")).await;
    assert_eq!(replayed.status, 200, "the charge still replays");
    assert_eq!(app.get("/ledger").await.body["voids"], 0);
}

/// A charge already inside payment-service (past its arrival, in its
/// simulated work) when the void lands is refused: the ledger looks at
/// the key again under its lock before it writes.
#[actix_web::test]
async fn a_charge_already_under_way_when_its_key_is_voided_is_refused() {
    let mut config = config();
    config.validate_ms = 400;
    let app = spawn(config);
    let order = new_order_id();
    let charge = {
        let (app, order) = (&app, order.clone());
        async move { app.charge(&order, charge_body(&order, "1.00")).await }
    };
    let void = async {
        eventually("the charge has arrived", || async {
            app.get("/ledger").await.body["requests"] == 1
        })
        .await;
        app.void(&order).await
    };
    let (charged, voided) = tokio::join!(charge, void);
    assert_eq!(voided.body["state"], "voided", "{}", voided.body);
    charged.assert_problem(409);
    assert_eq!(app.charges().await, 0);
}

#[actix_web::test]
async fn only_a_caller_with_the_service_key_may_void() {
    let app = spawn(config());
    let order = new_order_id();
    let anonymous = app
        .send(
            app.client
                .post(format!("{}/charges/{order}/void", app.address)),
            None,
        )
        .await;
    anonymous.assert_problem(401);
    assert_eq!(app.get("/ledger").await.body["voids"], 0);
}
