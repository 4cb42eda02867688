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
