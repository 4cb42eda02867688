//! A panicking actor is restarted by its supervisor; the service keeps
//! answering and the idempotency records survive.

use actors::supervision::Crash;

use crate::helpers::{order_body, spawn_app};

#[actix_web::test]
async fn every_actor_restarts_after_a_panic_and_orders_keep_succeeding() {
    let app = spawn_app();
    let before = app.post_order_with_key("kept", &order_body()).await;
    assert_eq!(before.status, 201);

    let r = &app.reliability;
    assert!(r.pipeline.breaker.send(Crash).await.unwrap().is_err());
    assert!(r.pipeline.bulkhead.send(Crash).await.unwrap().is_err());
    assert!(r.idempotency.send(Crash).await.unwrap().is_err());

    assert_eq!(app.get("/ready").await.status, 200);
    for _ in 0..5 {
        assert_eq!(app.post_order(&order_body()).await.status, 201);
    }
    let replay = app.post_order_with_key("kept", &order_body()).await;
    assert_eq!(replay.status, 201);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, before.body, "the record survived the restart");
    assert_eq!(app.charges().await, 6);
}
