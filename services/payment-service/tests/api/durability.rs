//! A payment-service restarted on the same `PAYMENT_LEDGER_PATH` still knows
//! every acknowledged charge and replays it for its key.

use crate::helpers::{charge_body, new_order_id, spawn_durable};

#[actix_web::test]
async fn a_restart_keeps_every_acknowledged_charge() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/ledger.jsonl");

    let app = spawn_durable(&path);
    let mut acknowledged = Vec::new();
    for amount in ["1.00", "2.50", "9999.99"] {
        let order = new_order_id();
        let reply = app.charge(&order, charge_body(&order, amount)).await;
        assert_eq!(reply.status, 201);
        acknowledged.push((order, amount, reply.body["transaction_id"].clone()));
    }
    app.stop().await;

    // A crash in the middle of an append leaves a torn last line.
    let torn = br#"{"transaction_id":"txn_torn","#;
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(torn);
    std::fs::write(&path, bytes).unwrap();

    let app = spawn_durable(&path);
    let audit = app.get("/ledger").await.body;
    assert_eq!(audit["charges"], 3);
    assert_eq!(audit["replay"]["replayed"], 3);
    assert_eq!(audit["replay"]["torn_tail_bytes"], torn.len());
    for (order, amount, txn) in &acknowledged {
        let known = app.get(&format!("/charges/{order}")).await;
        assert_eq!(known.body["transaction_id"], *txn);
        let replay = app.charge(order, charge_body(order, amount)).await;
        assert_eq!(replay.status, 200);
        assert_eq!(replay.body["transaction_id"], *txn);
    }
    let order = new_order_id();
    assert_eq!(
        app.charge(&order, charge_body(&order, "3.00")).await.status,
        201
    );
    app.stop().await;

    let app = spawn_durable(&path);
    let audit = app.get("/ledger?detail=true").await.body;
    assert_eq!(audit["charges"], 4);
    assert_eq!(audit["replay"]["torn_tail_bytes"], 0);
    assert_eq!(audit["entries"].as_array().unwrap().len(), 4);
}
