use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;

use crate::helpers::{closed_port_url, order_config, payment_config, spawn_app, spawn_app_with};

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

/// The next server-sent event of `stream`: its name and its data.
async fn next_event<S, E>(stream: &mut S, buffer: &mut Vec<u8>) -> Option<(String, Value)>
where
    S: futures_util::Stream<Item = Result<actix_web::web::Bytes, E>> + Unpin,
    E: std::fmt::Debug,
{
    loop {
        if let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let frame = String::from_utf8(buffer.drain(..end + 2).collect()).unwrap();
            if frame.starts_with(':') {
                continue; // a keep-alive comment
            }
            let field = |name: &str| {
                frame
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::to_owned)
            };
            let data = serde_json::from_str(&field("data: ")?).unwrap();
            return Some((field("event: ")?, data));
        }
        let chunk = actix_rt::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("an event within 5 s")?;
        buffer.extend_from_slice(&chunk.unwrap());
    }
}

#[actix_web::test]
async fn the_breakers_transitions_stream_as_they_happen_until_shutdown() {
    let mut config = order_config();
    config.server.admin_token = Some("order-admin".into());
    config.payment_service_url = closed_port_url();
    config.server.shutdown_timeout_secs = 30;
    let app = order_service::Application::build(config).unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = actix_rt::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let client = awc::Client::default();
    let admin = ("Authorization", "Bearer order-admin");

    let unauthenticated = client
        .get(format!("{base}/admin/breaker/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);

    let mut events = client
        .get(format!("{base}/admin/breaker/events"))
        .insert_header(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    assert_eq!(
        events.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    let mut buffer = Vec::new();
    let (name, first) = next_event(&mut events, &mut buffer).await.unwrap();
    assert_eq!(name, "state");
    assert_eq!(first["status"]["state"], "closed");

    let forced = client
        .put(format!("{base}/admin/breaker"))
        .insert_header(admin)
        .insert_header(("Content-Type", "application/json"))
        .send_body(r#"{"mode":"forced_open"}"#)
        .await
        .unwrap();
    assert_eq!(forced.status(), 200);
    let (name, transition) = next_event(&mut events, &mut buffer).await.unwrap();
    assert_eq!(name, "transition");
    assert_eq!(
        (transition["from"].as_str(), transition["to"].as_str()),
        (Some("closed"), Some("open"))
    );
    assert_eq!(transition["reason"]["kind"], "mode_changed");
    assert!(transition["at_ms"].as_u64().unwrap() > 0);

    // A shutdown ends the stream at once rather than waiting out its
    // 30 s for a response that never ends.
    let started = Instant::now();
    stop.send(()).unwrap();
    assert!(
        next_event(&mut events, &mut buffer).await.is_none(),
        "the stream ends"
    );
    server.await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
