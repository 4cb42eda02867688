//! TLS on both listeners and on the payment call, with a CA made for the
//! test ([`Pki`]): orders go out over HTTPS and on to payment-service over
//! mutual TLS, and payment-service refuses, in the handshake, any caller
//! without a valid certificate from its CA — none reaches a route, so
//! none is charged. Settings that would leave a hop in clear, or a file
//! that is not what it claims, stop the start with a message naming them.

use std::path::PathBuf;

use awc::http::Version;
use common::tls::TlsArgs;
use order_service::payment::link::PaymentTlsArgs;
use serde_json::json;

use crate::helpers::{
    ADMIN_TOKEN, PAYMENT_API_KEY, TestApp, order_body, order_config, payment_config,
    spawn_order_service, spawn_payment,
};
use crate::pki::{Pair, Pki};

fn listener(pair: &Pair) -> TlsArgs {
    TlsArgs {
        tls_cert: Some(pair.cert.clone()),
        tls_key: Some(pair.key.clone()),
    }
}

/// payment-service on TLS, taking only callers with a certificate from
/// the CA; its `https://127.0.0.1:port`.
fn spawn_payment_tls(pki: &Pki) -> (String, actix_web::dev::ServerHandle) {
    let mut payment = payment_config();
    payment.server.tls = listener(&pki.payment);
    payment.client_ca = Some(pki.ca.clone());
    let (address, handle) = spawn_payment(payment);
    (address.replace("http://", "https://"), handle)
}

/// Both services on TLS, order → payment over mutual TLS; the test's
/// client trusts the CA and holds a client certificate (to audit payment).
fn spawn_tls_app(pki: &Pki) -> TestApp {
    let (payment_address, payment_handle) = spawn_payment_tls(pki);
    let mut order = order_config();
    order.server.tls = listener(&pki.order);
    order.payment_service_url = payment_address.clone();
    order.payment_tls = PaymentTlsArgs {
        payment_ca: Some(pki.ca.clone()),
        payment_client_cert: Some(pki.client.cert.clone()),
        payment_client_key: Some(pki.client.key.clone()),
    };
    let mut app = spawn_order_service(order);
    app.address = app.address.replace("http://", "https://");
    app.payment_address = payment_address;
    app.client = pki.client(Some(&pki.client), &[b"http/1.1"]);
    app.handles.insert(0, payment_handle);
    app
}

#[actix_web::test]
async fn an_order_is_charged_over_mutual_tls_from_end_to_end() {
    let pki = Pki::new();
    let app = spawn_tls_app(&pki);

    let reply = app.post_order(&order_body()).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["status"], "completed");
    let id = reply.body["order_id"].as_str().unwrap();
    let read = app.get(&format!("/orders/{id}")).await;
    assert_eq!(read.body["status"], "completed");
    let entries = app.ledger_entries().await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["order_id"], id);
}

#[actix_web::test]
async fn the_listeners_offer_h2_and_http_1_1_by_alpn() {
    let pki = Pki::new();
    let app = spawn_tls_app(&pki);
    for (alpn, version) in [
        (&[b"h2" as &[u8], b"http/1.1"][..], Version::HTTP_2),
        (&[b"http/1.1" as &[u8]][..], Version::HTTP_11),
    ] {
        let client = pki.client(Some(&pki.client), alpn);
        for url in [&app.address, &app.payment_address] {
            let res = client.get(format!("{url}/health")).send().await.unwrap();
            assert_eq!(res.status(), 200);
            assert_eq!(res.version(), version, "{url} with {alpn:?}");
        }
    }
}

/// A charge as a caller would send it, with the service key.
async fn charge(client: &awc::Client, payment: &str) -> Result<u16, String> {
    client
        .post(format!("{payment}/charge"))
        .insert_header(("Authorization", format!("Bearer {PAYMENT_API_KEY}")))
        .insert_header(("Idempotency-Key", uuid::Uuid::new_v4().to_string()))
        .send_json(&json!({
            "order_id": uuid::Uuid::new_v4(), "merchant_id": "merchant_123",
            "amount": 9.99, "currency": "USD"
        }))
        .await
        .map(|res| res.status().as_u16())
        .map_err(|e| e.to_string())
}

#[actix_web::test]
async fn payment_refuses_callers_without_a_valid_client_certificate() {
    let pki = Pki::new();
    let (payment, _handle) = spawn_payment_tls(&pki);
    let refused = [
        ("no certificate", None),
        ("an expired certificate", Some(&pki.expired_client)),
        ("a certificate from another CA", Some(&pki.stranger)),
    ];
    for (what, identity) in refused {
        let client = pki.client(identity, &[b"http/1.1"]);
        let answer = charge(&client, &payment).await;
        assert!(answer.is_err(), "{what}: {answer:?}");
        // Even the public routes: the handshake comes before any route.
        let health = client.get(format!("{payment}/health")).send().await;
        assert!(health.is_err(), "{what}: /health answered");
    }
    // The same charge with order-service's certificate goes through, and
    // is the only one in the ledger.
    let client = pki.client(Some(&pki.client), &[b"http/1.1"]);
    assert_eq!(charge(&client, &payment).await, Ok(201));
    let mut ledger = client
        .get(format!("{payment}/ledger"))
        .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")))
        .send()
        .await
        .unwrap();
    let ledger: serde_json::Value = ledger.json().await.unwrap();
    assert_eq!(ledger["charges"], 1, "{ledger}");
}

#[actix_web::test]
async fn an_order_service_that_does_not_trust_payment_charges_nothing_and_says_so() {
    let pki = Pki::new();
    let (payment_address, payment_handle) = spawn_payment_tls(&pki);
    let mut order = order_config();
    order.payment_service_url = payment_address.clone();
    // payment's certificate is from the test CA; this trusts another.
    order.payment_tls.payment_ca = Some(pki.stranger.cert.clone());
    let mut app = spawn_order_service(order);
    app.payment_address = payment_address;
    app.handles.insert(0, payment_handle);

    let reply = app.post_order(&order_body()).await;
    reply.assert_problem(502);
    assert_eq!(reply.body["charge"], "none", "{}", reply.body);
    let auditor = pki.client(Some(&pki.client), &[b"http/1.1"]);
    app.client = auditor;
    assert_eq!(app.charges().await, 0);
    assert_eq!(app.payment_requests().await, 0);
}

/// The start fails, naming what is wrong.
fn refused_start(order: order_service::Config) -> String {
    match order_service::Application::build(order) {
        Ok(_) => panic!("order-service started"),
        Err(e) => e.to_string(),
    }
}

#[actix_web::test]
async fn settings_that_would_send_in_clear_or_read_nothing_stop_the_start() {
    let pki = Pki::new();
    let mut clear = order_config();
    clear.payment_service_url = "http://127.0.0.1:9".into();
    clear.payment_tls.payment_ca = Some(pki.ca.clone());
    assert!(refused_start(clear).contains("is not https"));

    let not_pem = pki.dir().join("not.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let mut bad_cert = order_config();
    bad_cert.server.tls = TlsArgs {
        tls_cert: Some(not_pem.clone()),
        tls_key: Some(pki.order.key.clone()),
    };
    let error = refused_start(bad_cert);
    assert!(
        error.contains("TLS_CERT") && error.contains("not.pem"),
        "{error}"
    );

    let mut missing = order_config();
    missing.payment_service_url = "https://localhost:9".into();
    missing.payment_tls.payment_ca = Some(PathBuf::from("/nonexistent/ca.pem"));
    let error = refused_start(missing);
    assert!(error.contains("PAYMENT_CA"), "{error}");

    let mut payment = payment_config();
    payment.client_ca = Some(pki.ca.clone());
    let error = payment_service::Application::build(payment)
        .err()
        .expect("CLIENT_CA without TLS_CERT is refused")
        .to_string();
    assert!(error.contains("CLIENT_CA needs TLS_CERT"), "{error}");
}

#[test]
fn a_certificate_without_its_key_is_refused_by_the_command_line() {
    use clap::Parser;
    let parsed = order_service::Config::try_parse_from(["order-service", "--tls-cert", "c.pem"]);
    assert!(parsed.is_err());
}

/// A client that gives up on an HTTP/2 stream over TLS (its request
/// future dropped: the stream is reset) cancels the handler as a TCP reset
/// does on plain HTTP: the order's flow still ends, and the retry with
/// the key gets that one order, charged once.
#[actix_web::test]
async fn an_h2_stream_reset_over_tls_leaves_one_order_and_one_charge() {
    let pki = Pki::new();
    let app = spawn_tls_app(&pki);
    app.set_faults(json!({"delay_ms": 200})).await;
    let h2 = pki.client(Some(&pki.client), &[b"h2"]);
    let send = h2
        .post(format!("{}/orders", app.address))
        .insert_header(("Idempotency-Key", "h2-cut"))
        .timeout(std::time::Duration::from_millis(50))
        .send_json(&order_body());
    assert!(send.await.is_err(), "the client gave up before the answer");
    // 409 while the first flow still runs, then its order's replay.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let reply = loop {
        let reply = app.post_order_with_key("h2-cut", &order_body()).await;
        if reply.status == 201 {
            break reply;
        }
        assert_eq!(reply.status, 409, "{}", reply.body);
        assert!(std::time::Instant::now() < deadline, "never answered 201");
        actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(reply.body["status"], "completed");
    assert_eq!(app.charges().await, 1);
    assert_eq!(app.keys_in_flight().await, 0);
}
