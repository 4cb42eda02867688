//! A payment-service restarted on the same `PAYMENT_LEDGER_PATH` still knows
//! every acknowledged charge and replays it for its key.

use crate::helpers::{charge_body, new_order_id, respawn_durable, spawn_durable};

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

    let app = respawn_durable(&path).await;
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

    let app = respawn_durable(&path).await;
    let audit = app.get("/ledger?detail=true").await.body;
    assert_eq!(audit["charges"], 4);
    assert_eq!(audit["replay"]["torn_tail_bytes"], 0);
    assert_eq!(audit["entries"].as_array().unwrap().len(), 4);
}

/// A rolling restart that overlaps: a second payment-service on the same
/// ledger would believe every key uncharged that the first charges after
/// its replay, and charge it again. It refuses to start instead.
#[actix_web::test]
async fn a_second_process_on_the_same_ledger_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.jsonl");
    let app = spawn_durable(&path);
    let order = new_order_id();
    assert_eq!(
        app.charge(&order, charge_body(&order, "1.00")).await.status,
        201
    );

    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_payment-service"))
        .env("PORT", "0")
        .env("BIND_ADDR", "127.0.0.1")
        .env("OTEL_SDK_DISABLED", "true")
        .env("PAYMENT_LEDGER_PATH", &path)
        .env("PAYMENT_API_KEY", "any")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // It must exit by itself; one that starts serving is the bug.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            second.kill().unwrap();
            panic!("a second payment-service started on a ledger in use");
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(1));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("locked by another payment-service process"),
        "{stderr}"
    );
    // The first is untouched and still the only writer.
    let audit = app.get("/ledger").await.body;
    assert_eq!(
        (audit["charges"].as_u64(), audit["keys"].as_u64()),
        (Some(1), Some(1))
    );
    app.stop().await;
}
