use serde_json::json;

use crate::helpers::{config, spawn};

#[actix_web::test]
async fn admin_answers_404_when_no_token_is_configured() {
    let mut config = config();
    config.server.admin_token = None;
    let app = spawn(config);
    app.put_faults(json!({"error_pct": 100}), None)
        .await
        .assert_problem(404);
    app.put_faults(json!({"error_pct": 100}), Some("guess"))
        .await
        .assert_problem(404);
    app.get("/admin/faults").await.assert_problem(404);
}

#[actix_web::test]
async fn admin_needs_the_bearer_token_when_one_is_configured() {
    let mut config = config();
    config.server.admin_token = Some("s3cret".into());
    let app = spawn(config);
    let missing = app.get_anonymous("/admin/faults").await;
    missing.assert_problem(401);
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    app.put_faults(json!({"error_pct": 100}), Some("s3cre"))
        .await
        .assert_problem(401);
    app.put_faults(json!({"error_pct": 100}), Some("s3cret!"))
        .await
        .assert_problem(401);
    assert_eq!(
        app.put_faults(json!({"error_pct": 5}), Some("s3cret"))
            .await
            .status,
        200
    );
}
