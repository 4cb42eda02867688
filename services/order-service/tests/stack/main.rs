//! The deployment files, checked without a Docker engine: the compose file
//! and the Prometheus config are validated by their own tools, the Grafana
//! dashboard only queries metrics the services export, and a real
//! Prometheus scrapes both running services with a config derived from the
//! repository's. Needs `docker-compose`, `promtool` and `prometheus`
//! (`make test-deps` installs them; CI does).

#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{name}` is not installed: run `make test-deps` (CI installs it)"
    );
    Command::new(name)
}

/// docker-compose in the repository, with the secrets `make up` passes.
fn compose() -> Command {
    let mut command = tool("docker-compose");
    command
        .current_dir(repo())
        .env("ADMIN_TOKEN", "stack-admin")
        .env("PAYMENT_API_KEY", "stack-key");
    command
}

#[test]
fn the_compose_file_is_valid() {
    let output = compose()
        .args(["-f", "docker-compose.yml", "config", "-q"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let profiles = compose()
        .args([
            "-f",
            "docker-compose.yml",
            "--profile",
            "metrics",
            "--profile",
            "replicas",
            "config",
            "--services",
        ])
        .output()
        .unwrap();
    let services = String::from_utf8_lossy(&profiles.stdout);
    for service in [
        "order-service",
        "payment-service",
        "otel-collector",
        "jaeger",
        "prometheus",
        "grafana",
        "postgres",
        "order-service-2",
        "order-service-3",
        "nginx",
    ] {
        assert!(
            services.lines().any(|l| l == service),
            "{service} missing: {services}"
        );
    }
    // `make observe`: Prometheus gets the config for services on the host.
    let observe = compose()
        .env(
            "PROMETHEUS_CONFIG",
            "./observability/config/prometheus-native.yml",
        )
        .args(["-f", "docker-compose.yml", "--profile", "metrics", "config"])
        .output()
        .unwrap();
    let rendered = String::from_utf8_lossy(&observe.stdout);
    assert!(
        rendered.contains("prometheus-native.yml:/etc/prometheus/prometheus.yml"),
        "{rendered}"
    );
}

/// Nothing of the stack is reachable from another host, and it does not
/// start without its secrets (there is no default to guess).
#[test]
fn the_compose_stack_is_local_and_needs_its_secrets() {
    let output = compose()
        .args([
            "-f",
            "docker-compose.yml",
            "--profile",
            "metrics",
            "--profile",
            "replicas",
            "config",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // docker-compose renders each published port as `- HOST_IP:PUBLISHED:TARGET/PROTO`
    // under `ports:`, and each service's environment one `NAME: value` a line.
    let rendered = String::from_utf8_lossy(&output.stdout);
    let mut published = 0;
    let mut in_ports = false;
    for line in rendered.lines() {
        let trimmed = line.trim();
        if trimmed == "ports:" {
            in_ports = true;
            continue;
        }
        if in_ports && let Some(port) = trimmed.strip_prefix("- ") {
            assert!(
                port.starts_with("127.0.0.1:"),
                "published beyond loopback: {port}"
            );
            published += 1;
            continue;
        }
        in_ports = false;
    }
    assert!(published >= 9, "{published} ports in {rendered}");
    // payment-service and the three order-service replicas: each has both secrets.
    let lines = |start: &str| {
        rendered
            .lines()
            .filter(|l| l.trim().starts_with(start))
            .count()
    };
    assert_eq!(lines("ADMIN_TOKEN: stack-admin"), 4, "{rendered}");
    // The order-services reach payment's fault controls with its token.
    assert_eq!(lines("PAYMENT_ADMIN_TOKEN: stack-admin"), 3, "{rendered}");
    assert_eq!(
        rendered.matches("PAYMENT_API_KEY: stack-key").count(),
        4,
        "{rendered}"
    );

    let refused = tool("docker-compose")
        .current_dir(repo())
        .env_remove("ADMIN_TOKEN")
        .env_remove("PAYMENT_API_KEY")
        .args(["-f", "docker-compose.yml", "config", "-q"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("make up"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// The compose stack's config, and `make observe`'s for services run
/// natively: both valid, with the same jobs (the dashboard queries them).
#[test]
fn the_prometheus_configs_are_valid_and_scrape_the_same_jobs() {
    let jobs = |file: &str| -> Vec<String> {
        let output = tool("promtool")
            .current_dir(repo())
            .args(["check", "config", file])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        std::fs::read_to_string(repo().join(file))
            .unwrap()
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- job_name: "))
            .map(str::to_owned)
            .collect()
    };
    let compose = jobs("observability/config/prometheus.yml");
    assert_eq!(compose.len(), 3, "{compose:?}");
    assert_eq!(jobs("observability/config/prometheus-native.yml"), compose);
}

/// Metric names in a PromQL expression: identifiers outside label matchers
/// and grouping clauses that are not functions or keywords.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const NOT_METRICS: &[&str] = &[
        "sum",
        "by",
        "rate",
        "increase",
        "histogram_quantile",
        "changes",
        "without",
        "avg",
        "max",
        "min",
        "le",
        "job",
    ];
    let mut cleaned = String::new();
    let mut depth = 0;
    for c in expr.chars() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ if depth == 0 => cleaned.push(c),
            _ => {}
        }
    }
    // Drop grouping labels: `by (a, b)`.
    let mut out = String::new();
    let mut rest = cleaned.as_str();
    while let Some(at) = rest.find("by (") {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let close = rest.find(')').unwrap();
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| !t.is_empty() && !t.chars().next().unwrap().is_ascii_digit())
        .filter(|t| !NOT_METRICS.contains(t))
        .map(str::to_owned)
        .collect()
}

async fn exported(app: &helpers::TestApp) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for base in [&app.address, &app.payment_address] {
        let mut res = app
            .client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let text = String::from_utf8(res.body().limit(1 << 22).await.unwrap().to_vec()).unwrap();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let end = line.find(['{', ' ']).unwrap();
            names.insert(line[..end].to_owned());
        }
    }
    names
}

#[actix_web::test]
async fn every_dashboard_query_names_a_metric_the_services_export() {
    let app = helpers::spawn_app();
    assert_eq!(app.post_order(&helpers::order_body()).await.status, 201);
    let exported = exported(&app).await;

    let path = repo().join("observability/config/grafana/dashboards/reliable-orders.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(dashboard["title"], "reliable-orders");
    let mut queries: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    queries.extend(
        dashboard["annotations"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["expr"].as_str().map(str::to_owned)),
    );
    assert!(queries.len() >= 10);
    for query in &queries {
        let names = metric_names(query);
        assert!(!names.is_empty(), "no metric in {query}");
        for name in names {
            assert!(
                exported.contains(&name),
                "{query} names {name}, which no service exports"
            );
        }
    }
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[actix_web::test]
async fn a_real_prometheus_scrapes_both_services() {
    let app = helpers::spawn_app();
    assert_eq!(app.post_order(&helpers::order_body()).await.status, 201);
    let port = |url: &str| url.rsplit(':').next().unwrap().to_owned();

    let config = std::fs::read_to_string(repo().join("observability/config/prometheus.yml"))
        .unwrap()
        .replace(
            "order-service:8080",
            &format!("127.0.0.1:{}", port(&app.address)),
        )
        .replace(
            "payment-service:8081",
            &format!("127.0.0.1:{}", port(&app.payment_address)),
        )
        .replace("scrape_interval: 5s", "scrape_interval: 1s");
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let web = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let _prometheus = Prometheus(
        tool("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let api = format!("http://{web}/api/v1");
    let get = |url: String| {
        let client = app.client.clone();
        async move {
            let mut res = client.get(url).send().await.ok()?;
            serde_json::from_slice::<Value>(&res.body().limit(1 << 22).await.ok()?).ok()
        }
    };

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(targets) = get(format!("{api}/targets")).await {
            let up: BTreeSet<_> = targets["data"]["activeTargets"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["health"] == "up")
                .map(|t| t["labels"]["job"].as_str().unwrap().to_owned())
                .collect();
            if up.contains("order-service") && up.contains("payment-service") {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw both services up"
        );
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    for series in ["cb_state", "http_server_request_duration_seconds_bucket"] {
        loop {
            let found = get(format!("{api}/series?match[]={series}"))
                .await
                .is_some_and(|r| r["data"].as_array().is_some_and(|d| !d.is_empty()));
            if found {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no {series} series in Prometheus"
            );
            actix_rt::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[test]
fn the_metric_name_extraction_sees_through_promql() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (job, le) (rate(http_server_request_duration_seconds_bucket{job="x"}[1m])))"#,
    );
    assert_eq!(
        names,
        BTreeSet::from(["http_server_request_duration_seconds_bucket".to_owned()])
    );
}

/// The Kubernetes demo runs the compose stack's collector configuration:
/// kustomize reads no file outside the overlay, so it keeps a copy.
#[test]
fn the_kubernetes_collector_config_is_the_compose_one() {
    let read = |path: &str| std::fs::read_to_string(repo().join(path)).unwrap();
    assert_eq!(
        read("deploy/k8s/overlays/demo/otel-collector-config.yaml"),
        read("observability/config/otel-collector.yaml"),
        "copy observability/config/otel-collector.yaml over the overlay's"
    );
}

/// With the services stopped, the make targets a newcomer runs first say
/// what to do and fail, instead of printing curl's exit code (or, for
/// loadgen, a report of nothing and success).
#[test]
fn make_targets_against_stopped_services_say_to_run_make_run_and_fail() {
    let closed = helpers::closed_port_url();
    for (target, url) in [
        ("fault-errors", "PAYMENT_URL"),
        ("fault-clear", "PAYMENT_URL"),
        ("faults", "PAYMENT_URL"),
        ("breaker", "ORDER_URL"),
    ] {
        let output = tool("make")
            .current_dir(repo())
            .args(["-s", target, &format!("{url}={closed}")])
            .env("ADMIN_TOKEN", "stopped")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "make {target} succeeded");
        assert!(said.contains("make run"), "make {target}: {said}");
    }
    let loadgen = repo().join("target/debug/loadgen");
    assert!(
        loadgen.exists(),
        "no {}: make test builds it",
        loadgen.display()
    );
    let output = Command::new(loadgen)
        .args(["-url", &format!("{closed}/orders"), "-n", "3", "-c", "1"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "loadgen succeeded: {said}");
    assert!(said.contains("make run"), "{said}");
}
