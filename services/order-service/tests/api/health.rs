use serde_json::json;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn health_and_ready_answer_200() {
    let app = spawn_app();
    let health = app.get("/health").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body, json!({"status": "healthy"}));
    assert_eq!(app.get("/ready").await.status, 200);
    assert_eq!(
        app.get_payment("/health").await.body,
        json!({"status": "healthy"})
    );
}

#[actix_web::test]
async fn unknown_routes_are_404_problems() {
    let app = spawn_app();
    app.get("/nope").await.assert_problem(404);
}

#[actix_web::test]
async fn invented_methods_share_one_metric_label() {
    let app = spawn_app();
    for n in 0..50 {
        let method =
            actix_web::http::Method::from_bytes(format!("INVENTED{n}").as_bytes()).unwrap();
        let reply = app
            .client
            .request(method, format!("{}/orders", app.address))
            .send()
            .await
            .unwrap();
        assert!(reply.status().is_client_error(), "{}", reply.status());
    }
    let mut metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    let text = String::from_utf8(metrics.body().limit(1 << 22).await.unwrap().to_vec()).unwrap();
    assert!(!text.contains("INVENTED"), "a series per invented method");
    let other = text
        .lines()
        .find(|l| l.starts_with("http_server_requests_total{") && l.contains(r#"method="_OTHER""#))
        .expect("the invented methods, counted as _OTHER");
    assert!(other.ends_with(" 50"), "{other}");
}

#[actix_web::test]
async fn a_known_path_with_another_method_is_405_naming_the_allowed_ones() {
    use actix_web::http::Method;
    let app = spawn_app();
    let cases = [
        (Method::DELETE, format!("{}/orders", app.address), "POST"),
        (
            Method::PATCH,
            format!("{}/orders/{}", app.address, uuid::Uuid::new_v4()),
            "GET",
        ),
        (Method::POST, format!("{}/health", app.address), "GET"),
        (
            Method::PUT,
            format!("{}/ledger", app.payment_address),
            "GET",
        ),
        (
            Method::GET,
            format!("{}/charge", app.payment_address),
            "POST",
        ),
    ];
    for (method, url, allow) in cases {
        let reply = app
            .send(app.client.request(method.clone(), &url), None)
            .await;
        reply.assert_problem(405);
        assert_eq!(reply.header("allow"), Some(allow), "{method} {url}");
    }
    app.get("/nope").await.assert_problem(404);
}
