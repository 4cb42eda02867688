//! The two services as real processes (their own tracer provider and
//! `service.name` each), on ports they pick themselves.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Service {
    child: Child,
    pub url: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Service {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no goodbye, no flush.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Resident memory now, in KiB (Linux).
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kib| kib.parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binaries of this build, or of `$SERVICE_BINARIES` (the chaos suite
/// runs the release build).
pub fn binary(name: &str) -> PathBuf {
    let dir = std::env::var_os("SERVICE_BINARIES").map_or_else(
        || {
            PathBuf::from(env!("CARGO_BIN_EXE_order-service"))
                .parent()
                .unwrap()
                .to_owned()
        },
        PathBuf::from,
    );
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first (`make test` builds every binary)",
        path.display()
    );
    path
}

/// Starts `name` with `env`, returning once it logged the port it listens on.
pub fn spawn(name: &str, env: &[(&str, String)]) -> Service {
    let mut command = Command::new(binary(name));
    command
        .env("PORT", "0")
        .env("BIND_ADDR", "127.0.0.1")
        .env("PAYMENT_API_KEY", PAYMENT_API_KEY)
        .env("RUST_LOG", "info")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env_remove("OTEL_SDK_DISABLED")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("service starts");
    let stdout = child.stdout.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (port_tx, port_rx) = mpsc::channel();
    let lines = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(port) = json["port"].as_u64()
                && json["message"]
                    .as_str()
                    .is_some_and(|m| m.ends_with("listening"))
            {
                let _ = port_tx.send(port);
            }
            lines.lock().unwrap().push(line);
        }
    });
    let port = port_rx
        .recv_timeout(Duration::from_secs(15))
        .unwrap_or_else(|_| panic!("{name} did not report its port"));
    Service {
        child,
        url: format!("http://127.0.0.1:{port}"),
        log,
    }
}

pub struct Pair {
    pub order: Service,
    pub payment: Service,
}

pub const ADMIN_TOKEN: &str = "telemetry-admin";
/// Both services of a pair get it: one presents it, the other checks it.
pub const PAYMENT_API_KEY: &str = "telemetry-payment-key";

/// payment-service, then order-service calling it; both exporting to `otlp`.
/// order-service continues the caller's trace unless `order_env` sets
/// TRUST_TRACEPARENT=false.
pub fn spawn_pair(otlp: &str, order_env: &[(&str, &str)], payment_env: &[(&str, &str)]) -> Pair {
    fn common<'a>(otlp: &str, extra: &[(&'a str, &str)]) -> Vec<(&'a str, String)> {
        let mut env = vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.to_owned()),
            ("ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        env
    }
    let payment = spawn("payment-service", &common(otlp, payment_env));
    // The tests name each trace by the caller's traceparent, as behind a
    // trusted proxy; `order_env` may say otherwise.
    let mut env = vec![("TRUST_TRACEPARENT", "true".to_owned())];
    env.extend(common(otlp, order_env));
    env.push(("PAYMENT_SERVICE_URL", payment.url.clone()));
    let order = spawn("order-service", &env);
    Pair { order, payment }
}

/// One series of a service's `/metrics` (its name with any labels, as the
/// exposition writes it), if it is there.
pub async fn metric(base: &str, series: &str) -> Option<f64> {
    metric_with(&awc::Client::default(), base, series).await
}

/// As [`metric`], through `client` (one that speaks TLS to an https `base`).
pub async fn metric_with(client: &awc::Client, base: &str, series: &str) -> Option<f64> {
    let mut res = client.get(format!("{base}/metrics")).send().await.ok()?;
    let text = String::from_utf8(res.body().limit(1 << 22).await.ok()?.to_vec()).ok()?;
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(series))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}
