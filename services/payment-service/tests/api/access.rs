//! Who may do what: only the holder of the service key creates charges,
//! only operators read the ledger, and a read of the ledger is one bounded
//! page, however big the ledger grows.

use std::collections::HashSet;

use crate::helpers::{ADMIN_TOKEN, API_KEY, charge_body, config, new_order_id, spawn};

#[actix_web::test]
async fn a_charge_without_the_service_key_is_401_and_charges_nothing() {
    let app = spawn(config());
    let order = new_order_id();
    let admin = format!("Bearer {ADMIN_TOKEN}");
    for authorization in [None, Some("Bearer wrong"), Some(admin.as_str())] {
        let req = app
            .client
            .post(format!("{}/charge", app.address))
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("Idempotency-Key", order.as_str()));
        let req = match authorization {
            Some(value) => req.insert_header(("Authorization", value)),
            None => req,
        };
        let reply = app.send(req, Some(charge_body(&order, "9999.99"))).await;
        reply.assert_problem(401);
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        assert!(
            !reply.body["detail"].as_str().unwrap().contains(API_KEY),
            "the 401 does not reveal the key"
        );
    }
    assert_eq!(app.charges().await, 0);
    assert_eq!(
        app.charge(&order, charge_body(&order, "1.00")).await.status,
        201
    );
}

#[actix_web::test]
async fn the_ledger_and_a_charge_by_key_are_for_operators_only() {
    let app = spawn(config());
    let order = new_order_id();
    app.charge(&order, charge_body(&order, "1.00")).await;
    for path in [
        "/ledger",
        "/ledger?detail=true",
        &format!("/charges/{order}"),
    ] {
        app.get_anonymous(path).await.assert_problem(401);
        assert_eq!(app.get(path).await.status, 200, "{path}");
    }
    // The service key is not an admin token.
    let with_key = app
        .client
        .get(format!("{}/ledger", app.address))
        .insert_header(("Authorization", format!("Bearer {API_KEY}")));
    app.send(with_key, None).await.assert_problem(401);
    // Without an admin token configured, the reads do not exist.
    let mut config = config();
    config.server.admin_token = None;
    let closed = spawn(config);
    closed.get_anonymous("/ledger").await.assert_problem(404);
}

#[test]
fn payment_service_does_not_start_without_a_service_key() {
    let mut config = config();
    config.api_key = None;
    let error = payment_service::Application::build(config)
        .err()
        .expect("refused");
    assert!(error.to_string().contains("PAYMENT_API_KEY"), "{error}");
    let mut config = self::config();
    config.api_key = Some(String::new());
    assert!(
        payment_service::Application::build(config).is_err(),
        "empty counts as unset"
    );
}

#[actix_web::test]
async fn the_ledger_is_read_a_bounded_page_at_a_time() {
    let app = spawn(config());
    let mut charged = Vec::new();
    for _ in 0..25 {
        let order = new_order_id();
        assert_eq!(
            app.charge(&order, charge_body(&order, "1.00")).await.status,
            201
        );
        charged.push(order);
    }
    let mut seen = Vec::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        let page = app
            .get(&format!("/ledger?detail=true&limit=10&after={after}"))
            .await
            .body;
        assert_eq!(page["charges"], 25, "the counts are the whole ledger's");
        let entries = page["entries"].as_array().unwrap();
        assert!(entries.len() <= 10);
        seen.extend(
            entries
                .iter()
                .map(|c| c["order_id"].as_str().unwrap().to_owned()),
        );
        pages += 1;
        match page["next_cursor"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, charged, "every charge once, in the order made");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 25);

    let summary = app.get("/ledger").await.body;
    assert!(summary.get("entries").is_none() && summary.get("next_cursor").is_none());
    let past_the_end = app.get("/ledger?detail=true&after=1000").await.body;
    assert_eq!(past_the_end["entries"], serde_json::json!([]));
    for bad in ["limit=0", "limit=1001", "limit=ten", "after=-1", "page=2"] {
        app.get(&format!("/ledger?detail=true&{bad}"))
            .await
            .assert_problem(400);
    }
}
