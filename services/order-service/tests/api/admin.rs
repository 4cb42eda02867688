use crate::helpers::{order_config, payment_config, spawn_app, spawn_app_with};

#[actix_web::test]
async fn admin_is_404_without_a_token_and_401_with_a_wrong_one() {
    let app = spawn_app();
    app.get("/admin/breaker").await.assert_problem(404);

    let mut config = order_config();
    config.server.admin_token = Some("order-admin".into());
    let app = spawn_app_with(config, payment_config());
    let reply = app.get("/admin/breaker").await;
    reply.assert_problem(401);
    let wrong = app
        .send(
            app.client
                .get(format!("{}/admin/breaker", app.address))
                .insert_header(("Authorization", "Bearer order-admiN")),
            None,
        )
        .await;
    wrong.assert_problem(401);
}
