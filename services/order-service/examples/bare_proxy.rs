//! The floor under order-service's CPU per order: what actix-web and awc
//! cost for the same HTTP work with none of the service around it. It
//! takes `POST /orders`, parses the body, charges payment-service once
//! (`POST /charge` with order-service's body, `Authorization` and
//! `Idempotency-Key`; without its `Request-Timeout`) and
//! answers 201 with the order: no idempotency, no breaker, no bulkhead, no
//! store, no tracing, no metrics. `make bench` runs it beside order-service
//! in memory so that the two are compared within one run
//! (docs/benchmarks.md).
//!
//! `PORT`, `PAYMENT_SERVICE_URL`, `PAYMENT_API_KEY`, `HTTP_WORKERS`.

use actix_web::http::header::AUTHORIZATION;
use actix_web::{App, HttpResponse, HttpServer, web};
use common::domain::Amount;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Deserialize)]
struct NewOrder {
    merchant_id: String,
    amount: Amount,
    currency: String,
}

#[derive(Serialize)]
struct Charge<'a> {
    order_id: Uuid,
    merchant_id: &'a str,
    amount: Amount,
    currency: &'a str,
}

#[derive(Deserialize)]
struct Receipt {
    transaction_id: String,
}

struct Payment {
    http: awc::Client,
    url: String,
    authorization: String,
}

async fn create(order: web::Json<NewOrder>, payment: web::Data<Payment>) -> HttpResponse {
    let order_id = Uuid::new_v4();
    let charge = Charge {
        order_id,
        merchant_id: &order.merchant_id,
        amount: order.amount,
        currency: &order.currency,
    };
    let sent = payment
        .http
        .post(&payment.url)
        .insert_header((AUTHORIZATION, payment.authorization.as_str()))
        .insert_header(("idempotency-key", order_id.to_string()))
        .send_json(&charge)
        .await;
    let receipt = match sent {
        Ok(mut response) if response.status().is_success() => response.json::<Receipt>().await,
        _ => return HttpResponse::BadGateway().finish(),
    };
    let Ok(receipt) = receipt else {
        return HttpResponse::BadGateway().finish();
    };
    HttpResponse::Created()
        .insert_header(("location", format!("/orders/{order_id}")))
        .json(serde_json::json!({
            "order_id": order_id,
            "merchant_id": order.merchant_id,
            "amount": order.amount,
            "currency": order.currency,
            "status": "completed",
            "transaction_id": receipt.transaction_id,
        }))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let port: u16 = var("PORT", "8080").parse().expect("PORT is a port number");
    let base = var("PAYMENT_SERVICE_URL", "http://127.0.0.1:8081");
    let url = format!("{}/charge", base.trim_end_matches('/'));
    let authorization = format!("Bearer {}", var("PAYMENT_API_KEY", ""));
    let mut server = HttpServer::new(move || {
        let payment = Payment {
            http: awc::Client::default(),
            url: url.clone(),
            authorization: authorization.clone(),
        };
        App::new()
            .app_data(web::Data::new(payment))
            .route("/orders", web::post().to(create))
            .route("/ready", web::get().to(HttpResponse::Ok))
    });
    if let Ok(workers) = var("HTTP_WORKERS", "").parse() {
        server = server.workers(workers);
    }
    server.bind(("127.0.0.1", port))?.run().await
}
