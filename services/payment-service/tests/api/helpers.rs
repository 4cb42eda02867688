use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use actix_web::dev::ServerHandle;
use awc::http::StatusCode;
use payment_service::{Application, Config};
use serde_json::{Value, json};

/// The service key and admin token of [`config`].
pub const API_KEY: &str = "test-service-key";
pub const ADMIN_TOKEN: &str = "test-admin-token";

pub struct TestPayment {
    pub address: String,
    pub handle: ServerHandle,
    pub client: awc::Client,
    /// Sent on `POST /charge`.
    api_key: Option<String>,
    /// Sent on every `get`.
    admin_token: Option<String>,
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
        assert!(self.body["title"].is_string() && self.body["detail"].is_string());
    }
}

/// Defaults, on a random loopback port, with no simulated latency.
pub fn config() -> Config {
    observability::init_for_tests();
    let mut config = Config::defaults();
    config.port = 0;
    config.server.bind_addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    config.server.workers = Some(2);
    config.validate_ms = 0;
    config.gateway_ms = 0;
    config.fault_seed = Some(42);
    config.api_key = Some(API_KEY.into());
    config.server.admin_token = Some(ADMIN_TOKEN.into());
    config
}

pub fn spawn(config: Config) -> TestPayment {
    let (api_key, admin_token) = (config.api_key.clone(), config.server.admin_token.clone());
    serve(
        Application::build(config).expect("payment-service starts"),
        api_key,
        admin_token,
    )
}

fn serve(app: Application, api_key: Option<String>, admin_token: Option<String>) -> TestPayment {
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    actix_rt::spawn(app.run_until_stopped());
    TestPayment {
        address,
        handle,
        api_key,
        admin_token,
        client: awc::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .finish(),
    }
}

pub fn spawn_durable(path: &Path) -> TestPayment {
    let mut config = config();
    config.ledger_path = Some(path.to_owned());
    spawn(config)
}

/// As [`spawn_durable`], after a stop: the stopped server's workers may
/// still hold the ledger's lock for a moment after `stop` returns, so this
/// polls until the lock is free (at most 5 s).
pub async fn respawn_durable(path: &Path) -> TestPayment {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let mut config = config();
        config.ledger_path = Some(path.to_owned());
        match Application::build(config) {
            Ok(app) => return serve(app, Some(API_KEY.into()), Some(ADMIN_TOKEN.into())),
            Err(_) if std::time::Instant::now() < deadline => {
                actix_rt::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(e) => panic!("payment-service does not start again: {e}"),
        }
    }
}

pub fn charge_body(order_id: &str, amount: &str) -> String {
    format!(
        r#"{{"order_id":"{order_id}","merchant_id":"merchant_123","amount":{amount},"currency":"USD"}}"#
    )
}

pub fn new_order_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl TestPayment {
    pub async fn send(&self, req: awc::ClientRequest, body: Option<String>) -> Reply {
        let mut response = match body {
            Some(body) => req.send_body(body).await,
            None => req.send().await,
        }
        .expect("request sent");
        let bytes = response.body().await.expect("body read");
        Reply {
            status: response.status(),
            headers: response.headers().clone(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// `POST /charge` as order-service sends it: the service key and JSON.
    pub fn post_charge(&self) -> awc::ClientRequest {
        let req = self
            .client
            .post(format!("{}/charge", self.address))
            .insert_header(("Content-Type", "application/json"));
        match &self.api_key {
            Some(key) => req.insert_header(("Authorization", format!("Bearer {key}"))),
            None => req,
        }
    }

    pub async fn charge(&self, key: &str, body: String) -> Reply {
        let req = self.post_charge().insert_header(("Idempotency-Key", key));
        self.send(req, Some(body)).await
    }

    /// A GET as an operator: with the admin token, if one is configured.
    pub async fn get(&self, path: &str) -> Reply {
        let req = self.client.get(format!("{}{path}", self.address));
        let req = match &self.admin_token {
            Some(token) => req.insert_header(("Authorization", format!("Bearer {token}"))),
            None => req,
        };
        self.send(req, None).await
    }

    /// A GET with no credentials.
    pub async fn get_anonymous(&self, path: &str) -> Reply {
        self.send(self.client.get(format!("{}{path}", self.address)), None)
            .await
    }

    pub async fn put_faults(&self, faults: Value, token: Option<&str>) -> Reply {
        let mut req = self
            .client
            .put(format!("{}/admin/faults", self.address))
            .insert_header(("Content-Type", "application/json"));
        if let Some(token) = token {
            req = req.insert_header(("Authorization", format!("Bearer {token}")));
        }
        self.send(req, Some(faults.to_string())).await
    }

    /// `POST /charges/{key}/void` with the service key.
    pub async fn void(&self, key: &str) -> Reply {
        let mut req = self
            .client
            .post(format!("{}/charges/{key}/void", self.address));
        if let Some(api_key) = &self.api_key {
            req = req.insert_header(("Authorization", format!("Bearer {api_key}")));
        }
        self.send(req, None).await
    }

    pub async fn charges(&self) -> u64 {
        self.get("/ledger").await.body["charges"].as_u64().unwrap()
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

pub fn no_faults() -> Value {
    json!({"delay_ms": 0, "error_pct": 0, "rate_limit_pct": 0, "fail_after_charge_pct": 0})
}

/// Polls `condition` every 10 ms until it holds; fails the test after 20 s.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !condition().await {
        assert!(std::time::Instant::now() < deadline, "never true: {what}");
        actix_rt::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The payment-service binary as a process of its own on the log `ledger`,
/// for what an in-process server cannot take: a SIGKILL, a process limit.
/// `shell` runs it (`bash -c`) and must end in `exec "$0"`, so the process
/// killed is payment-service itself. Returns once its `/health` answers,
/// with its base URL.
pub async fn spawn_process(ledger: &Path, shell: &str) -> (std::process::Child, String) {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let child = std::process::Command::new("bash")
        .args(["-c", shell, env!("CARGO_BIN_EXE_payment-service")])
        .env("PORT", port.to_string())
        .env("BIND_ADDR", "127.0.0.1")
        .env("OTEL_SDK_DISABLED", "true")
        .env("RUST_LOG", "off")
        .env("PAYMENT_LEDGER_PATH", ledger)
        .env("PAYMENT_API_KEY", API_KEY)
        .env("PAYMENT_VALIDATE_MS", "0")
        .env("PAYMENT_GATEWAY_MS", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("bash runs");
    let base = format!("http://127.0.0.1:{port}");
    let client = awc::Client::default();
    eventually("payment-service answers", || async {
        client.get(format!("{base}/health")).send().await.is_ok()
    })
    .await;
    (child, base)
}
