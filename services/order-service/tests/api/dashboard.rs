//! `/admin/dashboard`: the page and its files (off without the admin
//! token, a strict Content-Security-Policy, nothing inline), and the data
//! routes behind the token. The page in a real browser: `browser.rs`.

use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_TOKEN, TestApp, order_config, payment_config, spawn_app, spawn_app_with,
};

pub const ORDER_ADMIN: &str = "order-admin";

/// Both services, order-service with its admin token and payment's (the
/// dashboard's fault controls) when `controls`.
pub fn dashboard_app(controls: bool) -> TestApp {
    let mut config = order_config();
    config.server.admin_token = Some(ORDER_ADMIN.into());
    config.payment_admin_token = controls.then(|| ADMIN_TOKEN.into());
    spawn_app_with(config, payment_config())
}

async fn as_admin(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> crate::helpers::Reply {
    let url = format!("{}{path}", app.address);
    let request = match method {
        "PUT" => app
            .client
            .put(url)
            .insert_header(("Content-Type", "application/json")),
        _ => app.client.get(url),
    };
    let request = request.insert_header(("Authorization", format!("Bearer {ORDER_ADMIN}")));
    app.send(request, body.map(|b| b.to_string())).await
}

const FILES: [(&str, &str); 3] = [
    ("/admin/dashboard", "text/html; charset=utf-8"),
    (
        "/admin/dashboard/dashboard.js",
        "text/javascript; charset=utf-8",
    ),
    ("/admin/dashboard/dashboard.css", "text/css; charset=utf-8"),
];

#[actix_web::test]
async fn the_dashboard_does_not_exist_without_an_admin_token() {
    let app = spawn_app();
    for (path, _) in FILES {
        app.get(path).await.assert_problem(404);
    }
    app.get("/admin/dashboard/snapshot")
        .await
        .assert_problem(404);
}

#[actix_web::test]
async fn the_page_and_its_files_carry_a_strict_policy_and_nothing_inline() {
    let app = dashboard_app(false);
    for (path, content_type) in FILES {
        let mut answer = app
            .client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{path}");
        let header = |name: &str| {
            answer
                .headers()
                .get(name)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(header("content-type"), content_type);
        let policy = header("content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe"), "{policy}");
        assert_eq!(header("x-content-type-options"), "nosniff");
        let body = String::from_utf8(answer.body().await.unwrap().to_vec()).unwrap();
        if path == "/admin/dashboard" {
            // Scripts only from files; no inline style or handler.
            assert_eq!(
                body.matches("<script").count(),
                body.matches("<script src=").count()
            );
            assert!(!body.contains(" style=") && !body.contains(" onclick="));
        }
        // The token stays in the Authorization header: never in a URL or cookie.
        assert!(!body.contains("document.cookie") && !body.contains("?token"));
    }
}

#[actix_web::test]
async fn the_data_behind_the_page_needs_the_token() {
    let app = dashboard_app(true);
    for path in ["/admin/dashboard/snapshot", "/admin/payment/faults"] {
        app.get(path).await.assert_problem(401);
    }
}

#[actix_web::test]
async fn the_snapshot_names_the_replica_and_reads_the_ledger() {
    let app = dashboard_app(true);
    assert_eq!(
        app.post_order(&json!({"merchant_id": "m", "amount": 5, "currency": "USD"}))
            .await
            .status,
        201
    );
    let snapshot = as_admin(&app, "GET", "/admin/dashboard/snapshot", None).await;
    assert_eq!(snapshot.status, 200, "{}", snapshot.body);
    let body = &snapshot.body;
    assert!(
        body["replica"]
            .as_str()
            .unwrap()
            .contains(&std::process::id().to_string())
    );
    assert_eq!(body["store"], "memory");
    assert_eq!(body["payment"]["ledger_charges"], 1);
    assert_eq!(body["payment"]["controls"], true);
    assert_eq!(body["payment"]["faults"]["error_pct"], 0);
}

#[actix_web::test]
async fn payment_faults_set_through_order_service_reach_payment_and_bad_ones_are_refused() {
    let app = dashboard_app(true);
    let set = as_admin(
        &app,
        "PUT",
        "/admin/payment/faults",
        Some(json!({"error_pct": 40})),
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(app.get_payment("/admin/faults").await.body["error_pct"], 40);
    // payment's refusal comes back as payment gave it, and changes nothing.
    let bad = as_admin(
        &app,
        "PUT",
        "/admin/payment/faults",
        Some(json!({"error_pct": 101})),
    )
    .await;
    bad.assert_problem(422);
    // Read here as every body is: too large is 413, and nothing reaches payment.
    let huge = json!({"error_pct": 0, "pad": "x".repeat(20_000)});
    as_admin(&app, "PUT", "/admin/payment/faults", Some(huge))
        .await
        .assert_problem(413);
    assert_eq!(app.get_payment("/admin/faults").await.body["error_pct"], 40);

    // Without payment's token the controls are not there.
    let app = dashboard_app(false);
    as_admin(
        &app,
        "PUT",
        "/admin/payment/faults",
        Some(json!({"error_pct": 40})),
    )
    .await
    .assert_problem(404);
    assert_eq!(app.get_payment("/admin/faults").await.body["error_pct"], 0);
}

/// With PostgreSQL the pending orders and keys are every replica's, and
/// the page says so beside the replica that served it.
#[actix_web::test]
async fn on_postgres_the_snapshot_says_which_figures_are_shared() {
    let db = crate::database::TestDb::create().await;
    let mut config = db.config(order_config());
    config.server.admin_token = Some(ORDER_ADMIN.into());
    let storage = order_service::store::Storage::open(config.storage()).unwrap();
    let app = crate::helpers::spawn_app_on(config, payment_config(), storage);
    let snapshot = as_admin(&app, "GET", "/admin/dashboard/snapshot", None).await;
    assert_eq!(snapshot.status, 200, "{}", snapshot.body);
    assert_eq!(snapshot.body["store"], "postgresql");
    // Without payment's token: its faults are shown, not controlled.
    assert_eq!(snapshot.body["payment"]["controls"], false);
    assert_eq!(snapshot.body["payment"]["faults"], Value::Null);
}
