//! A payment-service restarted on the same `PAYMENT_LEDGER_PATH` still knows
//! every acknowledged charge and replays it for its key.

use crate::helpers::{
    API_KEY, charge_body, eventually, new_order_id, respawn_durable, spawn_durable, spawn_process,
};

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
    // Closed once its zeros written ahead are cut off: only then may the
    // test write to it (the close would cut the torn line off too).
    eventually("the stopped ledger is closed", || async {
        std::fs::read(&path).unwrap().last() == Some(&b'\n')
    })
    .await;

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

/// Group commit under a SIGKILL: 32 clients charge new keys (and one key
/// all at once) against the binary, which is killed while its writer is
/// busy, its log followed by zeros written ahead. Restarted on the same
/// log, it has every charge it acknowledged, with the transaction it
/// acknowledged, and no key twice.
#[actix_web::test]
async fn a_sigkill_during_a_batch_loses_no_acknowledged_charge_and_doubles_none() {
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.jsonl");
    let (mut child, base) = spawn_process(&path, "exec \"$0\"").await;
    let url = format!("{base}/charge");
    let client = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .finish();

    // (key, transaction) of every 2xx seen.
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let shared_key = new_order_id();
    let clients: Vec<_> = (0..32)
        .map(|c| {
            let (client, url, acknowledged, shared_key) = (
                client.clone(),
                url.clone(),
                acknowledged.clone(),
                shared_key.clone(),
            );
            actix_rt::spawn(async move {
                for i in 0.. {
                    let key = if i % 8 == 0 {
                        shared_key.clone()
                    } else {
                        new_order_id()
                    };
                    let res = client
                        .post(&url)
                        .insert_header(("Content-Type", "application/json"))
                        .insert_header(("Authorization", format!("Bearer {API_KEY}")))
                        .insert_header(("Idempotency-Key", key.as_str()))
                        .send_body(charge_body(&key, "1.00"))
                        .await;
                    let Ok(mut res) = res else { return c };
                    if res.status().is_success() {
                        let body: serde_json::Value =
                            serde_json::from_slice(&res.body().await.unwrap_or_default())
                                .unwrap_or_default();
                        if let Some(txn) = body["transaction_id"].as_str() {
                            acknowledged.lock().unwrap().push((key, txn.to_owned()));
                        }
                    }
                }
                c
            })
        })
        .collect();
    // Past 1 MiB of lines: the zeros written ahead were extended at least
    // once under load.
    eventually("a few thousand charges are acknowledged", || async {
        acknowledged.lock().unwrap().len() >= 5_000
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    futures_util::future::join_all(clients).await;
    let killed = std::fs::read(&path).unwrap();
    assert_eq!(killed.last(), Some(&0), "killed with zeros written ahead");

    let app = spawn_durable(&path);
    let audit = app.get("/ledger").await.body;
    assert_eq!(audit["duplicates"], serde_json::json!([]));
    assert_eq!(audit["replay"]["repeated_keys"], 0);
    assert_eq!(audit["charges"], audit["keys"], "no key charged twice");
    let acknowledged = acknowledged.lock().unwrap().clone();
    let mut entries = std::collections::HashMap::new();
    let mut after = 0;
    loop {
        let page = app
            .get(&format!("/ledger?detail=true&after={after}"))
            .await
            .body;
        for entry in page["entries"].as_array().unwrap() {
            entries.insert(
                entry["idempotency_key"].as_str().unwrap().to_owned(),
                entry["transaction_id"].as_str().unwrap().to_owned(),
            );
        }
        match page["next_cursor"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
    }
    for (key, txn) in &acknowledged {
        assert_eq!(
            entries.get(key),
            Some(txn),
            "acknowledged {key} is in the ledger as acknowledged"
        );
    }
    assert!(acknowledged.len() >= 5_000);
}

/// A disk with room for the lines but not for another megabyte of zeros
/// written ahead still takes charges: the lines are written alone. The
/// file size limit (`ulimit -f`, 1.5 MiB) stands in for a nearly full disk:
/// past 1 MiB of lines, each write ahead fails as a full disk's would.
#[actix_web::test]
async fn a_disk_too_full_to_write_ahead_still_takes_charges() {
    const CHARGES: usize = 5_000; // about 1.25 MB of lines
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.jsonl");
    // Past the limit a write fails with EFBIG instead of killing the
    // process with SIGXFSZ, which the shell ignores for it.
    let (mut child, base) = spawn_process(&path, "trap '' XFSZ; ulimit -f 1536; exec \"$0\"").await;
    let url = format!("{base}/charge");
    let client = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .finish();

    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let (client, url, next) = (client.clone(), url.clone(), next.clone());
            actix_rt::spawn(async move {
                let mut statuses = Vec::new();
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < CHARGES {
                    let key = new_order_id();
                    let status = client
                        .post(&url)
                        .insert_header(("Content-Type", "application/json"))
                        .insert_header(("Authorization", format!("Bearer {API_KEY}")))
                        .insert_header(("Idempotency-Key", key.as_str()))
                        .send_body(charge_body(&key, "1.00"))
                        .await
                        .map(|res| res.status().as_u16());
                    statuses.push(status.unwrap_or(0));
                }
                statuses
            })
        })
        .collect();
    let mut refused = 0;
    for statuses in futures_util::future::join_all(clients).await {
        refused += statuses.unwrap().iter().filter(|&&s| s != 201).count();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(refused, 0, "every charge taken");
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size > 1 << 20, "past the first megabyte: {size} bytes");

    let app = spawn_durable(&path);
    let audit = app.get("/ledger").await.body;
    assert_eq!(audit["charges"], CHARGES);
    assert_eq!(audit["keys"], CHARGES);
    assert_eq!(audit["replay"]["torn_tail_bytes"], 0);
    app.stop().await;
}
