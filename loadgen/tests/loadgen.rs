//! loadgen against small servers started here, each misbehaving in one
//! known way, so every number loadgen reports can be checked.

use std::net::TcpListener;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use clap::Parser;
use loadgen::cli::{Args, normalize_args};
use loadgen::engine::{Plan, run};
use loadgen::report::Report;

#[derive(Default)]
struct State {
    hits: AtomicU64,
    first: Mutex<Option<Instant>>,
    stall_until: Mutex<Option<Instant>>,
    keys: Mutex<std::collections::HashSet<String>>,
}

async fn mixed(state: web::Data<State>) -> HttpResponse {
    if state.hits.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) {
        HttpResponse::Created()
            .json(serde_json::json!({"order_id": uuid::Uuid::new_v4().to_string()}))
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("application/problem+json")
            .body(r#"{"type":"x","title":"Bulkhead limit reached","status":503,"detail":"full"}"#)
    }
}

async fn slow() -> HttpResponse {
    actix_rt::time::sleep(Duration::from_millis(20)).await;
    HttpResponse::Ok().finish()
}

async fn fast() -> HttpResponse {
    HttpResponse::Ok().finish()
}

/// Answers at once, except that one second after the first request it
/// freezes for one second: everything arriving meanwhile waits it out.
async fn stall(state: web::Data<State>) -> HttpResponse {
    let now = Instant::now();
    let first = *state.first.lock().unwrap().get_or_insert(now);
    let until = {
        let mut stall = state.stall_until.lock().unwrap();
        if stall.is_none() && now.duration_since(first) >= Duration::from_secs(1) {
            *stall = Some(now + Duration::from_secs(1));
        }
        *stall
    };
    if let Some(until) = until.filter(|u| *u > now) {
        actix_rt::time::sleep(until - now).await;
    }
    HttpResponse::Ok().finish()
}

/// A new order for every request, whatever its Idempotency-Key.
async fn not_idempotent() -> HttpResponse {
    HttpResponse::Created().json(serde_json::json!({"order_id": uuid::Uuid::new_v4().to_string()}))
}

/// The same order for the same key.
async fn idempotent(req: HttpRequest) -> HttpResponse {
    let key = req
        .headers()
        .get("Idempotency-Key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    HttpResponse::Created().json(serde_json::json!({"order_id": format!("order-for-{key}")}))
}

/// The same order for the same key, after 20 ms; a second request with a key
/// still in flight gets 409, as order-service answers.
async fn in_flight(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let key = req
        .headers()
        .get("Idempotency-Key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if !state.keys.lock().unwrap().insert(key.clone()) {
        return HttpResponse::Conflict()
            .content_type("application/problem+json")
            .body(r#"{"type":"x","title":"Request in flight","status":409,"detail":"wait"}"#);
    }
    actix_rt::time::sleep(Duration::from_millis(20)).await;
    state.keys.lock().unwrap().remove(&key);
    HttpResponse::Created().json(serde_json::json!({"order_id": format!("order-for-{key}")}))
}

/// Starts the test server on its own thread; its base URL.
fn server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let state = web::Data::new(State::default());
            HttpServer::new(move || {
                App::new()
                    .app_data(state.clone())
                    .route("/mixed", web::post().to(mixed))
                    .route("/slow", web::get().to(slow))
                    .route("/fast", web::get().to(fast))
                    .route("/stall", web::get().to(stall))
                    .route("/not-idempotent", web::post().to(not_idempotent))
                    .route("/idempotent", web::post().to(idempotent))
                    .route("/in-flight", web::post().to(in_flight))
            })
            .workers(2)
            .listen(listener)
            .unwrap()
            .run()
            .await
            .unwrap();
        });
    });
    url
}

fn load(line: &str) -> Report {
    let args =
        Args::try_parse_from(normalize_args(line.split_whitespace().map(str::to_owned))).unwrap();
    let plan = Plan::from_args(&args).unwrap();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(plan))
}

#[test]
fn counts_statuses_and_problem_titles_are_exact() {
    let base = server();
    let report = load(&format!("loadgen -url {base}/mixed -n 200 -c 8"));
    assert_eq!(report.total, 200);
    assert_eq!(report.successful, 100);
    assert_eq!(report.failed, 100);
    assert_eq!(report.status_codes["201"], 100);
    assert_eq!(report.status_codes["503"], 100);
    assert_eq!(report.problem_titles["Bulkhead limit reached"], 100);
    assert!(report.errors.is_empty());
    let timeline_total: u64 = report.timeline.iter().map(|s| s.ok + s.server_errors).sum();
    assert_eq!(timeline_total, 200);
}

#[test]
fn percentiles_of_a_fixed_delay_are_that_delay() {
    let base = server();
    let report = load(&format!(
        "loadgen --url {base}/slow --method GET -n 200 -c 4"
    ));
    let l = report.latency;
    assert!(l.min_ms >= 20.0, "{l:?}");
    assert!((20.0..25.0).contains(&l.p50_ms), "{l:?}");
    assert!(l.p90_ms < 30.0, "{l:?}");
}

#[test]
fn the_open_model_holds_the_target_rate() {
    let base = server();
    let report = load(&format!(
        "loadgen --url {base}/fast --method GET --rate 200 --duration 3s -c 10"
    ));
    assert_eq!(report.mode, "open");
    let rate = report.requests_per_sec;
    assert!(
        (190.0..=210.0).contains(&rate),
        "{rate} requests/s for a target of 200"
    );
    assert!((590..=601).contains(&report.total), "{}", report.total);
}

#[test]
fn a_stall_shows_in_the_percentiles_of_the_open_model() {
    let base = server();
    let report = load(&format!(
        "loadgen --url {base}/stall --method GET --rate 100 --duration 3s -c 4"
    ));
    let l = report.latency;
    // A third of the requests were due during the one-second freeze: their
    // latency counts from when they were due, so p99 is near the stall…
    assert!(l.p99_ms >= 800.0, "coordinated omission: {l:?}");
    // …while most requests were fast.
    assert!(l.p50_ms < 100.0, "{l:?}");
    assert_eq!(report.total, 300);
}

#[test]
fn replays_catch_a_server_that_is_not_idempotent() {
    let base = server();
    let report = load(&format!(
        "loadgen --url {base}/not-idempotent -n 100 -c 4 --replay-pct 50 --seed 7"
    ));
    let replay = report.replay.unwrap();
    assert!(replay.sent > 20, "{replay:?}");
    assert_eq!(replay.same_order, 0, "{replay:?}");
    assert_eq!(replay.violations + replay.not_comparable, replay.sent);
    // A lost connection makes a pair not comparable; nearly all compare.
    assert!(replay.violations >= replay.sent * 9 / 10, "{replay:?}");

    let report = load(&format!(
        "loadgen --url {base}/idempotent -n 100 -c 4 --replay-pct 50 --seed 7"
    ));
    let replay = report.replay.unwrap();
    assert_eq!(replay.violations, 0, "{replay:?}");
    assert_eq!(replay.same_order + replay.not_comparable, replay.sent);
    assert!(replay.same_order >= replay.sent * 9 / 10, "{replay:?}");
}

#[test]
fn every_replay_is_counted_once() {
    let base = server();
    let report = load(&format!(
        "loadgen --url {base}/in-flight -n 200 -c 4 --replay-pct 50 --seed 11"
    ));
    let r = report.replay.unwrap();
    // Half the replays race their original and are refused with 409; the
    // others come after it and get its order. Each is counted in one place.
    assert_eq!(
        r.same_order + r.in_flight + r.violations + r.not_comparable,
        r.sent,
        "{r:?}"
    );
    assert!(r.in_flight > 0 && r.same_order > 0, "{r:?}");
    assert_eq!(r.in_flight, r.concurrent, "{r:?}");
    assert_eq!(r.not_comparable, 0, "{r:?}");
}

#[test]
fn a_one_second_run_is_drawn_with_points() {
    let base = server();
    let report = load(&format!(
        "loadgen --url {base}/mixed -c 2 --rate 100 --duration 1s"
    ));
    let svg = loadgen::timeline::render(&report, "one second");
    // The 2xx line: one point per 100 ms bucket, each also a dot.
    let line = svg
        .lines()
        .find(|l| l.contains(r#"data-name="2xx""#))
        .expect("a 2xx line");
    let points = line
        .split("points=\"")
        .nth(1)
        .and_then(|p| p.split('"').next())
        .unwrap();
    let ys: Vec<f64> = points
        .split(' ')
        .map(|p| p.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(ys.len() >= 10, "{points}");
    // Drawn well above the floor of its panel (the first frame): not zeros.
    let frame = svg
        .lines()
        .find(|l| l.contains(r##"fill="none" stroke="#bbb""##))
        .unwrap();
    let attribute = |name: &str| -> f64 {
        frame
            .split(&format!(" {name}=\""))
            .nth(1)
            .and_then(|v| v.split('"').next())
            .unwrap()
            .parse()
            .unwrap()
    };
    let floor = attribute("y") + attribute("height");
    assert!(
        ys.iter().all(|y| *y < floor - 50.0),
        "{points} floor {floor}"
    );
    assert!(svg.matches("<circle").count() >= 10);
    // Without a followed breaker, the band is read off the answers: the
    // server's 503s are not the breaker's, so it is closed throughout.
    assert!(svg.contains("breaker-closed") && !svg.contains("breaker-open"));
}

#[test]
fn failures_without_an_answer_are_categorised() {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let report = load(&format!("loadgen -url {closed}/orders -n 10 -c 2"));
    assert_eq!(report.errors["connect_refused"], 10);
    assert_eq!(report.failed, 10);
}

#[test]
fn the_json_report_round_trips_through_serde() {
    let base = server();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "-url",
            &format!("{base}/mixed"),
            "-n",
            "50",
            "-c",
            "5",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let report: Report = serde_json::from_slice(&output.stdout).expect("stdout is the JSON report");
    assert_eq!(report.total, 50);
    let again: Report = serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
    assert_eq!(again, report);
}

#[test]
fn stages_ramp_the_arrival_rate() {
    let base = server();
    // 0 → 100/s over 1 s (50 requests), then 100/s for 1 s (100 requests).
    let report = load(&format!(
        "loadgen --url {base}/fast --method GET --rate 1 --stages 1s:100,1s:100 -c 10"
    ));
    assert!((140..=155).contains(&report.total), "{}", report.total);
    let in_second = |n: u64| -> u64 {
        report
            .timeline
            .iter()
            .filter(|b| b.start_ms / 1000 == n)
            .map(|b| b.ok)
            .sum()
    };
    let (first, second) = (in_second(0), in_second(1));
    assert!(first < second, "the rate ramps up: {first} then {second}");
    // A run of two seconds is drawn in buckets of 100 ms, not two points.
    assert_eq!(report.timeline_bucket_ms, 100);
    assert!(report.timeline.len() >= 20, "{}", report.timeline.len());
}
