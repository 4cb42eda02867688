//! The dashboard in a real browser: Debian's Chromium, headless, driven
//! over WebDriver (chromedriver, plain HTTP and JSON: no client crate).
//! What an operator does: a wrong token refused, the right one let in,
//! the breaker forced open through the API and seen open on the page,
//! payment's errors injected from the page and the error rate seen to
//! rise. Screenshots go to `reports/dashboard-*.png`.
//!
//! `make test-deps` installs `chromium` and `chromium-driver`; CHROME_BIN
//! and CHROMEDRIVER name others (a CI runner's Chrome).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::dashboard::{ORDER_ADMIN, dashboard_app};

/// The W3C name of an element reference in WebDriver's answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Browser {
    driver: Child,
    base: String,
    client: awc::Client,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    async fn start() -> Self {
        let program = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(&program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("`{program}`: {e}: run `make test-deps` (CI installs it)"));
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish();
        let mut browser = Self {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            client,
        };
        let ready = Instant::now() + Duration::from_secs(10);
        while browser
            .get("/status")
            .await
            .map(|v| v["ready"] != true)
            .unwrap_or(true)
        {
            assert!(Instant::now() < ready, "chromedriver did not start");
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        let binary = std::env::var("CHROME_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": binary, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                // No calls home: on a machine without a way out, Chromium's
                // own connections fail, many at a time, at every start.
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-quic", "--no-first-run",
                "--window-size=1200,1250"]}}}});
        let session = browser.post("/session", capabilities).await;
        let id = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("{session}"));
        browser.base = format!("{}/session/{id}", browser.base);
        browser
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        let mut answer = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = answer
            .json()
            .limit(1 << 24)
            .await
            .map_err(|e| e.to_string())?;
        Ok(body["value"].clone())
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let mut answer = self.client.post(url).send_json(&body).await.unwrap();
        let body: Value = answer.json().limit(1 << 24).await.unwrap();
        assert!(body["value"].get("error").is_none(), "{path}: {body}");
        body["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.post("/url", json!({"url": url})).await;
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        found[ELEMENT].as_str().unwrap().to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.post(&format!("/element/{id}/clear"), json!({})).await;
        self.post(&format!("/element/{id}/value"), json!({"text": text}))
            .await;
    }

    async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.post(&format!("/element/{id}/click"), json!({})).await;
    }

    async fn text(&self, css: &str) -> String {
        let id = self.element(css).await;
        let text = self.get(&format!("/element/{id}/text")).await.unwrap();
        text.as_str().unwrap_or_default().to_owned()
    }

    /// How long until the text of `css` satisfies `wanted` (10 s at most).
    async fn until(&self, css: &str, what: &str, wanted: impl Fn(&str) -> bool) -> Duration {
        let start = Instant::now();
        loop {
            let text = self.text(css).await;
            if wanted(&text) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{what}: {css} still says {text:?}"
            );
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn screenshot(&self, name: &str) {
        let png = self.get("/screenshot").await.unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../reports");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("dashboard-{name}.png")), png).unwrap();
    }
}

#[actix_web::test]
async fn an_operator_sees_the_breaker_open_and_the_errors_rise_on_the_dashboard() {
    let app = dashboard_app(true);
    let browser = Browser::start().await;
    browser
        .go(&format!("{}/admin/dashboard", app.address))
        .await;

    browser.type_into("#token", "not-the-token").await;
    browser.click("#login-form button").await;
    browser
        .until("#login-error", "a wrong token", |t| t.contains("refused"))
        .await;
    browser.screenshot("refused").await;

    browser.type_into("#token", ORDER_ADMIN).await;
    browser.click("#login-form button").await;
    browser
        .until("#breaker-state", "the breaker's state", |t| t == "closed")
        .await;

    // Forced open through the API: the page follows the event stream.
    let breaker = |mode: &str| {
        let request = app.client.put(format!("{}/admin/breaker", app.address));
        let request = request.insert_header(("Authorization", format!("Bearer {ORDER_ADMIN}")));
        request.send_json(&json!({"mode": mode}))
    };
    assert_eq!(breaker("forced_open").await.unwrap().status(), 200);
    let shown = browser
        .until("#breaker-state", "forced open", |t| t == "open")
        .await;
    assert!(
        shown < Duration::from_secs(1),
        "the page showed `open` after {shown:?}"
    );
    browser.screenshot("forced-open").await;
    assert_eq!(breaker("auto").await.unwrap().status(), 200);
    browser
        .until("#breaker-state", "back to auto", |t| t == "closed")
        .await;

    // Errors injected from the page (100 % by default), orders sent meanwhile.
    browser.click("#fault-form button[type=submit]").await;
    browser
        .until("#fault-answer", "the fault control", |t| t == "set")
        .await;
    assert_eq!(
        app.get_payment("/admin/faults").await.body["error_pct"],
        100
    );
    let buying = async {
        for _ in 0..200 {
            let body = json!({"merchant_id": "m", "amount": 5, "currency": "USD"});
            app.post_order(&body).await;
            actix_rt::time::sleep(Duration::from_millis(40)).await;
        }
    };
    let watching = async {
        let rate = |t: &str| t.trim_end_matches(" %").parse::<u32>().unwrap_or(0);
        browser
            .until("#error-rate", "the error rate", |t| rate(t) >= 50)
            .await;
        browser
            .until("#breaker-state", "the breaker opening on errors", |t| {
                t == "open"
            })
            .await;
        browser.screenshot("errors").await;
    };
    futures_util::pin_mut!(buying, watching);
    futures_util::future::select(buying, watching).await;
    let said = browser.text("#faults").await;
    assert!(said.contains("\"error_pct\":100"), "{said}");
}
