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

#[actix_web::test]
async fn the_stream_follows_a_whole_cycle_open_half_open_closed_with_its_reasons_and_counts() {
    let mut config = order_config();
    config.server.admin_token = Some("order-admin".into());
    config.breaker.consecutive_failures = 2;
    config.breaker.open_ms = 300;
    config.retry.max_attempts = 1;
    let app = spawn_app_with(config, payment_config());
    let mut events = app
        .client
        .get(format!("{}/admin/breaker/events", app.address))
        .insert_header(("Authorization", "Bearer order-admin"))
        .send()
        .await
        .unwrap();
    let mut buffer = Vec::new();
    let (name, first) = next_event(&mut events, &mut buffer).await.unwrap();
    assert_eq!(
        (name.as_str(), &first["status"]["state"]),
        ("state", &"closed".into())
    );

    // Two failed charges in a row open it.
    app.set_faults(serde_json::json!({"error_pct": 100})).await;
    for _ in 0..2 {
        app.post_order(&crate::helpers::order_body())
            .await
            .assert_problem(502);
    }
    let (name, opened) = next_event(&mut events, &mut buffer).await.unwrap();
    assert_eq!(name, "transition");
    assert_eq!(
        (opened["from"].as_str(), opened["to"].as_str()),
        (Some("closed"), Some("open"))
    );
    assert_eq!(opened["reason"]["kind"], "consecutive_failures");
    assert_eq!(opened["reason"]["failures"], 2);
    assert_eq!(
        (
            opened["window_calls"].as_u64(),
            opened["window_failures"].as_u64()
        ),
        (Some(2), Some(2))
    );

    // Payment heals; after the open time, the next order is a trial, and
    // three successful trials close it.
    app.set_faults(serde_json::json!({})).await;
    actix_rt::time::sleep(Duration::from_millis(350)).await;
    for _ in 0..3 {
        assert_eq!(
            app.post_order(&crate::helpers::order_body()).await.status,
            201
        );
    }
    let (_, probing) = next_event(&mut events, &mut buffer).await.unwrap();
    assert_eq!(
        (probing["from"].as_str(), probing["to"].as_str()),
        (Some("open"), Some("half_open"))
    );
    assert_eq!(probing["reason"]["kind"], "open_time_elapsed");
    let (_, closed) = next_event(&mut events, &mut buffer).await.unwrap();
    assert_eq!(
        (closed["from"].as_str(), closed["to"].as_str()),
        (Some("half_open"), Some("closed"))
    );
    assert_eq!(closed["reason"]["kind"], "trials_succeeded");
    assert_eq!(closed["reason"]["trials"], 3);
    assert!(opened["at_ms"].as_u64() <= probing["at_ms"].as_u64());
    assert!(probing["at_ms"].as_u64() <= closed["at_ms"].as_u64());
    assert!(probing["at_ms"].as_u64().unwrap() - opened["at_ms"].as_u64().unwrap() >= 300);
}
