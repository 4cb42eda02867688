use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actors::clock::SystemClock;
use order_service::store::{MemoryStore, OrderStore, Storage};

use actix_web::dev::ServerHandle;
use awc::http::StatusCode;
use serde_json::{Value, json};

pub struct TestApp {
    pub address: String,
    pub reliability: order_service::reliability::Reliability,
    pub payment_address: String,
    pub client: awc::Client,
    pub handles: Vec<ServerHandle>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: awc::http::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json error with this status.
    pub fn assert_problem(&self, status: u16) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(self.body["status"], status);
        assert!(self.body["type"].is_string());
        assert!(self.body["title"].is_string() && self.body["detail"].is_string());
    }
}

pub const ADMIN_TOKEN: &str = "payment-admin";
/// What order-service presents to payment-service's `POST /charge`.
pub const PAYMENT_API_KEY: &str = "test-payment-key";

pub fn payment_config() -> payment_service::Config {
    let mut config = payment_service::Config::defaults();
    config.port = 0;
    config.server.bind_addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    config.server.workers = Some(2);
    config.validate_ms = 0;
    config.gateway_ms = 0;
    config.server.admin_token = Some(ADMIN_TOKEN.into());
    config.api_key = Some(PAYMENT_API_KEY.into());
    config
}

/// payment-service with its own latencies (validate 5 ms, gateway 20 ms, as
/// the Go original's): a permit is held ~26 ms, long enough for a queue.
pub fn payment_at_its_latencies() -> payment_service::Config {
    let defaults = payment_service::Config::defaults();
    let mut config = payment_config();
    config.validate_ms = defaults.validate_ms;
    config.gateway_ms = defaults.gateway_ms;
    config
}

pub fn order_config() -> order_service::Config {
    let mut config = order_service::Config::defaults();
    config.port = 0;
    config.server.bind_addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    config.server.workers = Some(2);
    config.payment_api_key = Some(PAYMENT_API_KEY.into());
    // The reconciler re-drives pending orders in the background; tests of
    // other behaviour would race it, so it acts only where a test asks
    // (`reconcile_interval_ms`).
    config.reconciler.interval_ms = 3_600_000;
    config
}

/// The memory store `config` would open (its bound and its re-drives).
pub fn memory_store(config: &order_service::Config) -> MemoryStore {
    let storage = config.storage();
    MemoryStore::new(storage.orders_max, storage.redrives)
}

/// order-service whose reconciler re-drives pending orders every 50 ms,
/// with the breaker out of reach: failing re-drives would otherwise open
/// it for 30 s.
pub fn reconciling_order_config() -> order_service::Config {
    let mut config = order_config();
    config.reconciler.interval_ms = 50;
    config.breaker.consecutive_failures = 1000;
    config.breaker.min_calls = 1000;
    config
}

/// order-service and payment-service with default settings.
pub fn spawn_app() -> TestApp {
    spawn_app_with(order_config(), payment_config())
}

pub fn spawn_app_with(
    mut order: order_service::Config,
    payment: payment_service::Config,
) -> TestApp {
    observability::init_for_tests();
    let payment = payment_service::Application::build(payment).expect("payment-service starts");
    let payment_address = format!("http://127.0.0.1:{}", payment.port());
    let mut handles = vec![payment.handle()];
    actix_rt::spawn(payment.run_until_stopped());
    order.payment_service_url = payment_address.clone();
    let mut app = spawn_order_service(order);
    app.payment_address = payment_address;
    handles.append(&mut app.handles);
    app.handles = handles;
    app
}

/// Both services, order-service keeping its orders in `store`.
pub fn spawn_app_with_store(
    order: order_service::Config,
    payment: payment_service::Config,
    store: Arc<dyn OrderStore>,
) -> TestApp {
    spawn_app_on(order, payment, Storage::InProcess(store))
}

/// Both services, order-service on `storage`.
pub fn spawn_app_on(
    mut order: order_service::Config,
    payment: payment_service::Config,
    storage: Storage,
) -> TestApp {
    let payment = spawn_payment(payment);
    order.payment_service_url = payment.0.clone();
    spawn_order_on(order, storage, payment)
}

/// payment-service alone: its address and its handle.
pub fn spawn_payment(config: payment_service::Config) -> (String, ServerHandle) {
    observability::init_for_tests();
    let payment = payment_service::Application::build(config).expect("payment-service starts");
    let address = format!("http://127.0.0.1:{}", payment.port());
    let handle = payment.handle();
    actix_rt::spawn(payment.run_until_stopped());
    (address, handle)
}

/// order-service on `storage`, charging what `order.payment_service_url`
/// names; `payment` is the payment-service behind it (for audits).
pub fn spawn_order_on(
    order: order_service::Config,
    storage: Storage,
    payment: (String, ServerHandle),
) -> TestApp {
    spawn_order_on_clock(order, storage, payment, Arc::new(SystemClock))
}

/// As [`spawn_order_on`], on `clock`.
pub fn spawn_order_on_clock(
    order: order_service::Config,
    storage: Storage,
    (payment_address, payment_handle): (String, ServerHandle),
    clock: actors::clock::SharedClock,
) -> TestApp {
    let app = order_service::Application::build_with(order, storage, clock)
        .expect("order-service starts");
    let mut app = serve(app);
    app.payment_address = payment_address;
    app.handles.insert(0, payment_handle);
    app
}

/// order-service alone, charging whatever `config.payment_service_url` names.
pub fn spawn_order_service(config: order_service::Config) -> TestApp {
    observability::init_for_tests();
    serve(order_service::Application::build(config).expect("order-service starts"))
}

fn serve(app: order_service::Application) -> TestApp {
    let address = format!("http://127.0.0.1:{}", app.port());
    let handles = vec![app.handle()];
    let reliability = app.reliability().clone();
    actix_rt::spawn(app.run_until_stopped());
    TestApp {
        address,
        reliability,
        payment_address: String::new(),
        client: awc::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .finish(),
        handles,
    }
}

/// A loopback URL on which nothing listens.
pub fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

pub fn order_body() -> Value {
    json!({"merchant_id": "merchant_123", "amount": 99.99, "currency": "USD"})
}

impl TestApp {
    /// Sends `req`. Every error answer to `POST /orders` is checked to say
    /// what the client may conclude about money (`charge`), in every test.
    pub async fn send(&self, req: awc::ClientRequest, body: Option<String>) -> Reply {
        send(req, body).await
    }

    pub fn post_orders(&self) -> awc::ClientRequest {
        self.client.post(format!("{}/orders", self.address))
    }

    /// `POST /orders` of `body` as JSON, under `key` if one is given.
    fn order_request(&self, key: Option<&str>) -> awc::ClientRequest {
        let req = self
            .post_orders()
            .insert_header(("Content-Type", "application/json"));
        match key {
            Some(key) => req.insert_header(("Idempotency-Key", key)),
            None => req,
        }
    }

    /// `POST /orders` as a task of its own: the test goes on while the
    /// order's flow waits, and reads the reply later.
    pub fn post_order_in_background(
        &self,
        key: Option<&str>,
        body: &Value,
    ) -> actix_rt::task::JoinHandle<Reply> {
        actix_rt::spawn(send(self.order_request(key), Some(body.to_string())))
    }

    /// `POST /orders` with a raw body as JSON.
    pub async fn post_order_raw(&self, body: impl Into<String>) -> Reply {
        self.send(self.order_request(None), Some(body.into())).await
    }

    pub async fn post_order(&self, body: &Value) -> Reply {
        self.post_order_raw(body.to_string()).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(format!("{}{path}", self.address)), None)
            .await
    }

    /// A GET on payment-service as an operator (its reads need the admin token).
    pub async fn get_payment(&self, path: &str) -> Reply {
        let req = self
            .client
            .get(format!("{}{path}", self.payment_address))
            .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")));
        self.send(req, None).await
    }

    pub async fn set_faults(&self, faults: Value) {
        let req = self
            .client
            .put(format!("{}/admin/faults", self.payment_address))
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")));
        let reply = self.send(req, Some(faults.to_string())).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }

    pub async fn post_order_with_key(&self, key: &str, body: &Value) -> Reply {
        self.send(self.order_request(Some(key)), Some(body.to_string()))
            .await
    }

    pub async fn breaker(&self) -> actors::circuit_breaker::Status {
        self.reliability
            .pipeline
            .breaker
            .send(actors::circuit_breaker::GetStatus)
            .await
            .unwrap()
            .unwrap()
    }

    /// Sets the breaker's operator override.
    pub async fn set_breaker(&self, mode: actors::circuit_breaker::Mode) {
        self.reliability
            .pipeline
            .breaker
            .send(actors::circuit_breaker::SetMode {
                mode,
                span: tracing::Span::none(),
            })
            .await
            .unwrap()
            .unwrap();
    }

    /// Idempotency records held, whatever their phase.
    pub async fn keys_held(&self) -> usize {
        self.key_stats().await.entries
    }

    pub async fn key_stats(&self) -> actors::idempotency::Stats {
        self.reliability
            .idempotency
            .send(actors::idempotency::GetStats)
            .await
            .unwrap()
            .unwrap()
    }

    /// `POST /charge` requests payment-service has received.
    pub async fn payment_requests(&self) -> u64 {
        self.get_payment("/ledger").await.body["requests"]
            .as_u64()
            .unwrap()
    }

    /// Charges in payment-service's ledger.
    pub async fn charges(&self) -> u64 {
        self.get_payment("/ledger").await.body["charges"]
            .as_u64()
            .unwrap()
    }
}

/// Polls `condition` every 10 ms until it holds; fails the test after 10 s.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(std::time::Instant::now() < deadline, "never true: {what}");
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
}

impl TestApp {
    /// Keys the idempotency store holds in flight.
    pub async fn keys_in_flight(&self) -> usize {
        self.key_stats().await.in_flight
    }

    /// Orders the reconciler tracks.
    pub async fn tracked(&self) -> usize {
        self.reliability
            .reconciler
            .send(actors::reconciler::PendingCount)
            .await
            .unwrap()
            .unwrap()
    }

    /// Every charge in payment's ledger.
    pub async fn ledger_entries(&self) -> Vec<Value> {
        self.get_payment("/ledger?detail=true").await.body["entries"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

async fn send(req: awc::ClientRequest, body: Option<String>) -> Reply {
    let post_order =
        req.get_method() == awc::http::Method::POST && req.get_uri().path() == "/orders";
    let reply = exchange(req, body).await;
    if post_order && !reply.status.is_success() {
        let charge = reply.body["charge"].as_str();
        assert!(
            matches!(charge, Some("none" | "unknown")),
            "POST /orders answered {} without saying what was charged: {}",
            reply.status,
            reply.body
        );
    }
    reply
}

async fn exchange(req: awc::ClientRequest, body: Option<String>) -> Reply {
    let mut response = match body {
        Some(body) => req.send_body(body).await,
        None => req.send().await,
    }
    .expect("request sent");
    let bytes = response.body().limit(1 << 20).await.expect("body read");
    Reply {
        status: response.status(),
        headers: response.headers().clone(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}
