//! Traces end to end: both services run as real processes exporting OTLP to
//! an in-test receiver, and each test asserts the span tree of docs/contract.md §8
//! for one kind of order.

// Shared with the otlp_sink example, which uses its counting mode.
#[allow(dead_code)]
mod collector;
// Shared with the chaos suite, which kills and measures processes too.
#[allow(dead_code)]
mod processes;
// Shared with the API and chaos suites: a client that resets its connection.
#[allow(dead_code)]
#[path = "../api/hangup.rs"]
mod hangup;

use collector::{CLIENT, Collector, SERVER, STATUS_ERROR, Span};
use processes::{ADMIN_TOKEN, spawn_pair};
use serde_json::{Value, json};

/// A trace id of the test's choosing, sent as the caller's `traceparent`.
fn new_trace() -> (String, String) {
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let parent = &uuid::Uuid::new_v4().simple().to_string()[..16];
    let header = format!("00-{trace_id}-{parent}-01");
    (trace_id, header)
}

async fn post_order(base: &str, traceparent: &str, key: Option<&str>) -> (u16, Value) {
    let mut headers = vec![("traceparent", traceparent)];
    headers.extend(key.map(|key| ("Idempotency-Key", key)));
    send_order(base, &headers).await
}

/// `POST /orders` with these headers (and none of the trace's unless given).
async fn send_order(base: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = awc::Client::default()
        .post(format!("{base}/orders"))
        .insert_header(("Content-Type", "application/json"));
    for &header in headers {
        req = req.insert_header(header);
    }
    let mut res = req
        .send_body(r#"{"merchant_id":"merchant_123","amount":99.99,"currency":"USD"}"#)
        .await
        .unwrap();
    let body = res.body().await.unwrap();
    (
        res.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

fn one<'a>(trace: &'a [Span], name: &str) -> &'a Span {
    let found: Vec<_> = trace.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "exactly one {name}: {found:?}");
    found[0]
}

fn all<'a>(trace: &'a [Span], name: &str) -> Vec<&'a Span> {
    let mut spans: Vec<_> = trace.iter().filter(|s| s.name == name).collect();
    spans.sort_by_key(|s| s.attr("retry.attempt").map(str::to_owned));
    spans
}

/// The trace as an indented tree (printed with `--nocapture`).
fn tree(trace: &[Span]) -> String {
    fn walk(trace: &[Span], parent: &str, depth: usize, out: &mut String) {
        for span in trace.iter().filter(|s| s.parent_span_id == parent) {
            let attrs: Vec<_> = span
                .attributes
                .iter()
                .filter(|(k, _)| {
                    !k.starts_with("code.")
                        && !k.starts_with("thread.")
                        && k != "busy_ns"
                        && k != "idle_ns"
                        && !k.starts_with("target")
                })
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.push_str(&format!(
                "{}{} [{}] {}\n",
                "  ".repeat(depth),
                span.name,
                span.service,
                attrs.join(" ")
            ));
            walk(trace, &span.span_id, depth + 1, out);
        }
    }
    let ids: std::collections::HashSet<_> = trace.iter().map(|s| s.span_id.as_str()).collect();
    let mut out = String::new();
    for root in trace
        .iter()
        .filter(|s| !ids.contains(s.parent_span_id.as_str()))
    {
        walk(
            std::slice::from_ref(root),
            &root.parent_span_id,
            0,
            &mut out,
        );
        walk(trace, &root.span_id, 1, &mut out);
    }
    out
}

fn assert_child(child: &Span, parent: &Span) {
    assert_eq!(
        child.parent_span_id, parent.span_id,
        "{} should be a child of {}",
        child.name, parent.name
    );
}

#[actix_web::test]
async fn a_plain_order_has_every_span_of_the_contract_across_both_services() {
    let collector = Collector::start();
    every_span_of_the_contract(&collector, &collector.endpoint, &[], &[]).await;
    assert_eq!(collector.received_over_http(), 0, "gRPC by default");
}

#[actix_web::test]
async fn over_otlp_http_an_order_has_every_span_of_the_contract_too() {
    let collector = Collector::start();
    every_span_of_the_contract(
        &collector,
        &collector.http_endpoint,
        // The traces-specific variable wins over the general one.
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        ],
        &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")],
    )
    .await;
    assert_eq!(
        collector.received_over_http(),
        collector.received(),
        "every span came over HTTP"
    );
}

/// One keyed order and its replay, exported to `endpoint`: the span tree
/// and attributes of docs/contract.md §8.
async fn every_span_of_the_contract(
    collector: &Collector,
    endpoint: &str,
    order_env: &[(&str, &str)],
    payment_env: &[(&str, &str)],
) {
    let pair = spawn_pair(endpoint, order_env, payment_env);
    let (trace_id, traceparent) = new_trace();
    let (status, order) = post_order(&pair.order.url, &traceparent, Some("trace-me")).await;
    assert_eq!(status, 201, "{order}");

    let trace = collector
        .await_trace(
            &trace_id,
            &[
                "POST /orders",
                "createOrder",
                "idempotency.reserve",
                "callPayment",
                "POST",
                "breaker.admit",
                "bulkhead.acquire",
                "breaker.record",
                "POST /charge",
                "processCharge",
                "validate",
                "gatewayCall",
                "persistOrder",
                "idempotency.complete",
            ],
        )
        .await;
    println!("{}", tree(&trace));
    let server = one(&trace, "POST /orders");
    let create = one(&trace, "createOrder");
    let reserve = one(&trace, "idempotency.reserve");
    let call = one(&trace, "callPayment");
    let attempt = one(&trace, "POST");
    let charge_server = one(&trace, "POST /charge");
    let process = one(&trace, "processCharge");
    let gateway = one(&trace, "gatewayCall");

    // One trace, two services.
    assert_eq!(server.service, "order-service");
    assert_eq!(charge_server.service, "payment-service");
    assert!(trace.iter().all(|s| s.trace_id == trace_id));

    // The tree.
    assert_eq!(server.kind, SERVER);
    assert_child(create, server);
    assert_child(reserve, create);
    assert_child(call, create);
    assert_child(attempt, call);
    assert_eq!(attempt.kind, CLIENT);
    for actor_span in ["breaker.admit", "bulkhead.acquire", "breaker.record"] {
        assert_child(one(&trace, actor_span), attempt);
    }
    assert_child(charge_server, attempt);
    assert_eq!(charge_server.kind, SERVER);
    assert_child(process, charge_server);
    assert_child(one(&trace, "validate"), process);
    assert_child(gateway, process);
    assert_child(one(&trace, "persistOrder"), create);
    assert_child(one(&trace, "idempotency.complete"), create);

    // The attributes.
    let id = order["order_id"].as_str().unwrap();
    assert_eq!(create.attr("order.id"), Some(id));
    assert_eq!(create.attr("merchant.id"), Some("merchant_123"));
    assert_eq!(create.attr("order.amount"), Some("99.99"));
    assert_eq!(create.attr("order.currency"), Some("USD"));
    assert_eq!(create.attr("idempotency.key"), Some("trace-me"));
    assert_eq!(call.attr("timeout_ms"), Some("500"));
    assert_eq!(call.attr("retry.attempts"), Some("1"));
    assert_eq!(call.attr("retry.succeeded"), Some("true"));
    assert_eq!(attempt.attr("retry.attempt"), Some("0"));
    assert_eq!(attempt.attr("cb.state"), Some("closed"));
    assert_eq!(attempt.attr("bulkhead.max"), Some("10"));
    assert_eq!(attempt.attr("bulkhead.in_use"), Some("1"));
    assert_eq!(attempt.attr("http.response.status_code"), Some("201"));
    assert_eq!(
        attempt.attr("url.full"),
        Some(format!("{}/charge", pair.payment.url).as_str())
    );
    assert_eq!(attempt.attr("server.address"), Some("127.0.0.1"));
    assert!(attempt.attr("server.port").is_some());
    assert_eq!(server.attr("http.response.status_code"), Some("201"));
    assert_eq!(server.attr("http.request.method"), Some("POST"));
    assert_eq!(
        gateway.attr("transaction.id"),
        order["transaction_id"].as_str()
    );
    assert_eq!(process.attr("fault.error"), Some("false"));
    assert_eq!(reserve.attr("actor.name"), Some("IdempotencyStore"));
    assert_eq!(reserve.attr("actor.message"), Some("Reserve"));
    assert_eq!(
        one(&trace, "breaker.admit").attr("actor.name"),
        Some("CircuitBreaker")
    );
    assert_eq!(
        one(&trace, "bulkhead.acquire").attr("actor.name"),
        Some("Bulkhead")
    );

    // The replay of the same key: served from the store, no payment call.
    let (trace_id, traceparent) = new_trace();
    let (status, replayed) = post_order(&pair.order.url, &traceparent, Some("trace-me")).await;
    assert_eq!(status, 201);
    assert_eq!(replayed, order);
    let trace = collector
        .await_trace(
            &trace_id,
            &["POST /orders", "createOrder", "idempotency.reserve"],
        )
        .await;
    assert!(
        one(&trace, "createOrder")
            .event("idempotent_request_cached")
            .is_some()
    );
    assert!(
        trace
            .iter()
            .all(|s| s.name != "callPayment" && s.service == "order-service")
    );
}

#[actix_web::test]
async fn an_order_that_needed_retries_has_one_client_span_per_attempt() {
    let collector = Collector::start();
    // A seed whose first roll at 50 % fails and whose second passes.
    let seed = (0..1000u64)
        .find(|&seed| {
            use rand::{RngExt, SeedableRng};
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            rng.random_range(0..100u8) < 50 && rng.random_range(0..100u8) >= 50
        })
        .unwrap()
        .to_string();
    let pair = spawn_pair(
        &collector.endpoint,
        &[],
        &[("PAYMENT_ERROR_PCT", "50"), ("PAYMENT_FAULT_SEED", &seed)],
    );
    let (trace_id, traceparent) = new_trace();
    let (status, body) = post_order(&pair.order.url, &traceparent, None).await;
    assert_eq!(status, 201, "{body}");

    let trace = collector
        .await_trace(
            &trace_id,
            &[
                "callPayment",
                "POST",
                "POST",
                // Payment's server spans end after their children, and may
                // reach the collector in a later batch: awaited, not assumed.
                "POST /charge",
                "POST /charge",
                "processCharge",
                "processCharge",
                "gatewayCall",
            ],
        )
        .await;
    let call = one(&trace, "callPayment");
    assert_eq!(call.attr("retry.attempts"), Some("2"));
    assert_eq!(call.attr("retry.succeeded"), Some("true"));
    let retry = call.event("retry_due_to_status").expect("a retry event");
    assert!(
        retry
            .iter()
            .any(|(k, v)| k == "http.response.status_code" && v == "500")
    );
    let attempts = all(&trace, "POST");
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].attr("retry.attempt"), Some("0"));
    assert_eq!(attempts[0].attr("http.response.status_code"), Some("500"));
    assert_eq!(attempts[0].attr("error.type"), Some("500"));
    assert_eq!(attempts[0].status_code, STATUS_ERROR);
    assert_eq!(attempts[1].attr("retry.attempt"), Some("1"));
    assert_eq!(attempts[1].attr("http.request.resend_count"), Some("1"));
    assert_eq!(attempts[1].attr("http.response.status_code"), Some("201"));
    let backoff: u64 = attempts[1]
        .attr("retry.backoff_ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!((35..=65).contains(&backoff), "{backoff}");
    for attempt in attempts {
        assert_child(attempt, call);
    }
    // Each attempt reached payment as its own server span, under its own client span.
    let servers = all(&trace, "POST /charge");
    assert_eq!(servers.len(), 2);
    let parents: std::collections::HashSet<_> =
        servers.iter().map(|s| s.parent_span_id.clone()).collect();
    assert_eq!(parents.len(), 2);
}

#[actix_web::test]
async fn a_breaker_transition_and_an_open_rejection_are_traced() {
    let collector = Collector::start();
    let pair = spawn_pair(
        &collector.endpoint,
        &[("CB_CONSECUTIVE_FAILURES", "1")],
        &[("PAYMENT_ERROR_PCT", "100")],
    );

    // The first failed attempt opens the breaker, inside this order's trace.
    let (trace_id, traceparent) = new_trace();
    let (status, _) = post_order(&pair.order.url, &traceparent, None).await;
    assert_eq!(status, 502);
    let trace = collector
        .await_trace(&trace_id, &["breaker.record", "POST", "POST"])
        .await;
    let record = trace
        .iter()
        .find(|s| s.name == "breaker.record" && s.event("cb.transition").is_some())
        .expect("a breaker.record span with the transition");
    let event = record.event("cb.transition").unwrap();
    assert!(event.iter().any(|(k, v)| k == "cb.from" && v == "closed"));
    assert!(event.iter().any(|(k, v)| k == "cb.to" && v == "open"));

    // The next order is rejected by the open breaker: no payment span at all.
    let (trace_id, traceparent) = new_trace();
    let (status, body) = post_order(&pair.order.url, &traceparent, None).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["trace_id"].as_str() == Some(trace_id.as_str()),
        "the problem names its trace"
    );
    let trace = collector
        .await_trace(
            &trace_id,
            &["POST /orders", "callPayment", "POST", "breaker.admit"],
        )
        .await;
    let attempt = one(&trace, "POST");
    assert_eq!(attempt.attr("cb.state"), Some("open"));
    assert_eq!(attempt.attr("error.type"), Some("circuit_open"));
    assert_eq!(
        one(&trace, "callPayment").attr("retry.exhausted"),
        Some("true")
    );
    assert_eq!(
        one(&trace, "POST /orders").status_code,
        STATUS_ERROR,
        "5xx marks the server span"
    );
    assert!(
        trace.iter().all(|s| s.service == "order-service"),
        "payment saw nothing"
    );

    // Setting the mode is traced too.
    let client = awc::Client::default();
    let res = client
        .put(format!("{}/admin/breaker", pair.order.url))
        .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")))
        .insert_header(("Content-Type", "application/json"))
        .send_body(json!({"mode": "auto"}).to_string())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[actix_web::test]
async fn orders_succeed_while_the_collector_is_down_and_it_is_reported_once() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let pair = spawn_pair(&closed, &[], &[]);
    let started = std::time::Instant::now();
    for _ in 0..50 {
        let (_, traceparent) = new_trace();
        let (status, body) = post_order(&pair.order.url, &traceparent, None).await;
        assert_eq!(status, 201, "{body}");
    }
    println!("50 orders with the collector down: {:?}", started.elapsed());
    // Let several export rounds fail (the batch delay is 100 ms).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let warnings = || {
        pair.order
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("trace export failed"))
            .count()
    };
    while warnings() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the failure was never reported"
        );
        actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for _ in 0..20 {
        let (_, traceparent) = new_trace();
        assert_eq!(post_order(&pair.order.url, &traceparent, None).await.0, 201);
    }
    actix_rt::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(warnings(), 1, "one warning, then quiet");
}

/// Unkeyed and keyed (whose order is written by the idempotency actor,
/// under a span of its own): each re-drive links to its `createOrder`.
#[actix_web::test]
async fn a_reconciliation_links_to_the_trace_that_left_the_order_pending() {
    let collector = Collector::start();
    let pair = spawn_pair(
        &collector.endpoint,
        &[
            ("RECONCILE_INTERVAL_MS", "50"),
            ("CB_CONSECUTIVE_FAILURES", "1000"),
        ],
        &[("PAYMENT_FAIL_AFTER_CHARGE_PCT", "100")],
    );
    let mut left = Vec::new();
    for key in [None, Some("linked")] {
        let (trace_id, traceparent) = new_trace();
        let (status, body) = post_order(&pair.order.url, &traceparent, key).await;
        assert_eq!(status, 502, "{body}");
        let original = collector.await_trace(&trace_id, &["createOrder"]).await;
        let create = one(&original, "createOrder").span_id.clone();
        left.push((trace_id, create, body));
    }

    let client = awc::Client::default();
    let res = client
        .put(format!("{}/admin/faults", pair.payment.url))
        .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")))
        .insert_header(("Content-Type", "application/json"))
        .send_body("{}")
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    for (trace_id, create, body) in left {
        let reconcile = collector.await_linked("reconcileOrder", &trace_id).await;
        assert_ne!(
            reconcile.trace_id, trace_id,
            "its own trace, linked, not joined"
        );
        assert!(
            reconcile.links.contains(&(trace_id.clone(), create)),
            "{:?}",
            reconcile.links
        );
        assert_eq!(reconcile.attr("order.id"), body["order_id"].as_str());
        // The re-drive that completed it went through the whole pipeline.
        let completed = collector
            .await_trace(
                &reconcile.trace_id,
                &["reconcileOrder", "callPayment", "POST", "POST /charge"],
            )
            .await;
        let outcome = one(&completed, "reconcileOrder")
            .attr("reconcile.outcome")
            .map(str::to_owned);
        assert!(
            matches!(outcome.as_deref(), Some("completed" | "still_pending")),
            "{outcome:?}"
        );
    }
}

/// The spans of one order without a key: order-service's, then payment's.
const ORDER_SPANS: &[&str] = &[
    "POST /orders",
    "createOrder",
    "callPayment",
    "POST",
    "breaker.admit",
    "bulkhead.acquire",
    "breaker.record",
    "persistOrder",
];
const CHARGE_SPANS: &[&str] = &["POST /charge", "processCharge", "validate", "gatewayCall"];

fn traceparent_of(trace_id: &str, sampled: bool) -> String {
    let parent = &uuid::Uuid::new_v4().simple().to_string()[..16];
    format!(
        "00-{trace_id}-{parent}-{}",
        if sampled { "01" } else { "00" }
    )
}

/// Waits for a whole order's trace, both services' spans.
async fn await_order(collector: &Collector, trace_id: &str) -> Vec<Span> {
    let names: Vec<&str> = ORDER_SPANS.iter().chain(CHARGE_SPANS).copied().collect();
    collector.await_trace(trace_id, &names).await
}

/// A sampled order whose whole trace has reached the collector: what was
/// exported before it has arrived too. Its trace id.
async fn whole_marker_order(collector: &Collector, order_url: &str) -> String {
    let (marker, traceparent) = new_trace();
    assert_eq!(post_order(order_url, &traceparent, None).await.0, 201);
    let trace = await_order(collector, &marker).await;
    assert_eq!(
        trace.len(),
        ORDER_SPANS.len() + CHARGE_SPANS.len(),
        "{}",
        tree(&trace)
    );
    marker
}

#[actix_web::test]
async fn an_unsampled_trace_exports_nothing_in_either_service() {
    let collector = Collector::start();
    let pair = spawn_pair(&collector.endpoint, &[], &[]);
    // The caller decided not to sample: neither service exports a span of
    // it, and payment, told so through traceparent, starts no trace either.
    let unsampled = uuid::Uuid::new_v4().simple().to_string();
    let (status, body) =
        post_order(&pair.order.url, &traceparent_of(&unsampled, false), None).await;
    assert_eq!(status, 201, "{body}");
    // A sampled order after it: once its spans are in, the first order's
    // would have been too (each service exports its spans in order).
    whole_marker_order(&collector, &pair.order.url).await;
    let spans = collector.spans();
    assert!(spans.iter().all(|s| s.trace_id != unsampled), "{spans:?}");
    let charges = spans.iter().filter(|s| s.name == "POST /charge").count();
    assert_eq!(charges, 1, "payment traced only the sampled order");
}

#[actix_web::test]
async fn a_sampling_ratio_decides_once_per_trace_for_both_services() {
    let collector = Collector::start();
    // order-service samples half of the traces it starts; payment follows
    // whatever the caller decided.
    let pair = spawn_pair(
        &collector.endpoint,
        &[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
        ],
        &[],
    );
    let orders = 24;
    for i in 0..orders {
        // No traceparent: order-service is the root and decides. Every
        // other order has a key (two more actor spans, on another thread).
        let key = format!("ratio-{i}");
        let headers: &[(&str, &str)] = if i % 2 == 0 {
            &[("Idempotency-Key", &key)]
        } else {
            &[]
        };
        assert_eq!(send_order(&pair.order.url, headers).await.0, 201);
    }
    let (marker, traceparent) = new_trace();
    assert_eq!(post_order(&pair.order.url, &traceparent, None).await.0, 201);
    await_order(&collector, &marker).await;

    let spans = collector.spans();
    let mut traces: std::collections::HashMap<&str, Vec<&Span>> = Default::default();
    for span in spans.iter().filter(|s| s.trace_id != marker) {
        traces.entry(&span.trace_id).or_default().push(span);
    }
    // Each trace is whole (both services) or absent: never half-sampled.
    let mut whole: Vec<&str> = ORDER_SPANS.iter().chain(CHARGE_SPANS).copied().collect();
    whole.sort_unstable();
    let mut keyed = whole.clone();
    keyed.extend(["idempotency.reserve", "idempotency.complete"]);
    keyed.sort_unstable();
    for (trace_id, trace) in &traces {
        let mut names: Vec<&str> = trace.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        assert!(
            names == whole || names == keyed,
            "trace {trace_id}: {names:?}"
        );
    }
    // About half; all or none would be a 1 in 8 million chance.
    assert!(
        (1..orders).contains(&traces.len()),
        "{} of {orders} traces sampled",
        traces.len()
    );
}

/// A counter of `service`'s `/metrics` (0 when absent).
async fn metric(service: &str, series: &str) -> u64 {
    processes::metric(service, series)
        .await
        .map_or(0, |v| v as u64)
}

const EXPORTED: &str = "otel_spans_exported_total";
const DROPPED_FULL: &str = "otel_spans_dropped_total{reason=\"queue_full\"}";

/// Sends `orders` orders without a key, `concurrency` at a time.
async fn burst(url: &str, orders: usize, concurrency: usize) {
    let sent = std::sync::atomic::AtomicUsize::new(0);
    let worker = || async {
        while sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < orders {
            assert_eq!(send_order(url, &[]).await.0, 201);
        }
    };
    futures_util::future::join_all((0..concurrency).map(|_| worker())).await;
}

#[actix_web::test]
async fn every_span_of_a_burst_reaches_the_collector() {
    let collector = Collector::start();
    let pair = spawn_pair(&collector.endpoint, &[], &[]);
    let orders = 300;
    burst(&pair.order.url, orders, 16).await;
    let expected = orders * (ORDER_SPANS.len() + CHARGE_SPANS.len());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while (collector.received() as usize) < expected {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {expected} spans received",
            collector.received()
        );
        actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Exactly: nothing lost, nothing else exported (probes and scrapes are
    // not traced), and what each service counted is what arrived.
    assert_eq!(collector.received() as usize, expected);
    let exported =
        metric(&pair.order.url, EXPORTED).await + metric(&pair.payment.url, EXPORTED).await;
    assert_eq!(exported as usize, expected);
    assert_eq!(metric(&pair.order.url, DROPPED_FULL).await, 0);
    assert_eq!(metric(&pair.payment.url, DROPPED_FULL).await, 0);
}

#[actix_web::test]
async fn spans_that_find_the_export_queue_full_are_counted() {
    let collector = Collector::start();
    // A queue of two spans: a burst overflows it.
    let pair = spawn_pair(
        &collector.endpoint,
        &[("OTEL_BSP_MAX_QUEUE_SIZE", "2")],
        &[],
    );
    let orders = 100;
    burst(&pair.order.url, orders, 16).await;
    let produced = (orders * ORDER_SPANS.len()) as u64;
    // Every span is accounted for: exported or counted dropped.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let (exported, dropped) = loop {
        let exported = metric(&pair.order.url, EXPORTED).await;
        let dropped = metric(&pair.order.url, DROPPED_FULL).await;
        if exported + dropped == produced {
            break (exported, dropped);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{exported} exported + {dropped} dropped of {produced}"
        );
        actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(dropped > 0, "the burst overflowed the queue");
    let from_order = collector
        .spans()
        .iter()
        .filter(|s| s.service == "order-service")
        .count() as u64;
    assert_eq!(from_order, exported, "what was counted exported arrived");
}

#[actix_web::test]
async fn a_callers_tracestate_is_carried_through_unless_oversized() {
    let collector = Collector::start();
    let pair = spawn_pair(&collector.endpoint, &[], &[]);
    let order_with = |tracestate: String| {
        let url = pair.order.url.clone();
        async move {
            let (trace_id, traceparent) = new_trace();
            let headers = [("traceparent", &*traceparent), ("tracestate", &*tracestate)];
            assert_eq!(send_order(&url, &headers).await.0, 201);
            trace_id
        }
    };
    let small = order_with("congo=t61rcWkgMzE".to_owned()).await;
    let trace = await_order(&collector, &small).await;
    assert!(
        trace.iter().all(|s| s.trace_state == "congo=t61rcWkgMzE"),
        "in both services: {trace:?}"
    );
    // 40 members of 50 characters: past the W3C limits, ignored whole
    // rather than copied into every span and onto the call to payment.
    let large = (0..40)
        .map(|i| format!("v{i}={}", "x".repeat(45)))
        .collect::<Vec<_>>()
        .join(",");
    let trace_id = order_with(large).await;
    let trace = await_order(&collector, &trace_id).await;
    assert!(trace.iter().all(|s| s.trace_state.is_empty()));
}

#[actix_web::test]
async fn an_unusable_exporter_setting_leaves_the_services_running_untraced() {
    // An endpoint that is not a URL fails the exporter's build: the
    // services say so and serve without traces (this used to panic at
    // start).
    let pair = spawn_pair("not a url", &[], &[]);
    let (_, traceparent) = new_trace();
    let (status, body) = post_order(&pair.order.url, &traceparent, None).await;
    assert_eq!(status, 201, "{body}");
}

/// Posts with these headers (a key among them) until answered 201: a
/// replay, once the key's flow settled.
async fn replayed_201(base: &str, headers: &[(&str, &str)]) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, body) = send_order(base, headers).await;
        if status == 201 {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{headers:?}: still {status} {body}"
        );
        actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

const BODY: &str = r#"{"merchant_id":"merchant_123","amount":99.99,"currency":"USD"}"#;

#[actix_web::test]
async fn an_order_whose_client_reset_mid_charge_is_traced_whole_or_not_at_all() {
    let collector = Collector::start();
    // The charge takes 200 ms; the client, which asked for no trace, resets
    // 50 ms into it. A span of the abandoned flow judged as a root would be
    // sampled (the default) and arrive.
    let pair = spawn_pair(&collector.endpoint, &[], &[("PAYMENT_GATEWAY_MS", "200")]);
    let unsampled = traceparent_of(&uuid::Uuid::new_v4().simple().to_string(), false);
    let headers = [
        ("Idempotency-Key", "reset-unsampled"),
        ("traceparent", unsampled.as_str()),
    ];
    let reset = hangup::after(std::time::Duration::from_millis(50));
    hangup::post_order_with_headers_then_reset(&pair.order.url, &headers, BODY, reset).await;
    let order = replayed_201(&pair.order.url, &headers).await;
    assert!(order["transaction_id"].is_string(), "{order}");

    // A sampled order after it, whose trace is whole; nothing else arrived:
    // the abandoned flow's spans (on a task of its own) stayed off.
    let marker = whole_marker_order(&collector, &pair.order.url).await;
    let spans = collector.spans();
    assert!(
        spans.iter().all(|s| s.trace_id == marker),
        "only the marker's trace: {spans:?}"
    );
}

#[actix_web::test]
async fn a_sampled_order_whose_client_reset_mid_charge_keeps_its_whole_trace() {
    let collector = Collector::start();
    let pair = spawn_pair(&collector.endpoint, &[], &[("PAYMENT_GATEWAY_MS", "200")]);
    let reset = hangup::after(std::time::Duration::from_millis(50));
    hangup::post_order_then_reset(&pair.order.url, Some("reset-sampled"), BODY, reset).await;
    replayed_201(&pair.order.url, &[("Idempotency-Key", "reset-sampled")]).await;

    // The flow went on without its client, under the request's trace (the
    // replays have traces of their own, with no payment call).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let create = loop {
        let spans = collector.spans();
        let charged = |trace_id: &str| {
            spans
                .iter()
                .any(|s| s.trace_id == trace_id && s.name == "callPayment")
        };
        let found = spans.iter().find(|s| {
            s.name == "createOrder"
                && s.attr("idempotency.key") == Some("reset-sampled")
                && charged(&s.trace_id)
        });
        if let Some(span) = found {
            break span.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no charged createOrder span"
        );
        actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let mut names: Vec<&str> = ORDER_SPANS.iter().chain(CHARGE_SPANS).copied().collect();
    names.extend(["idempotency.reserve", "idempotency.complete"]);
    let trace = collector.await_trace(&create.trace_id, &names).await;
    println!("{}", tree(&trace));
    assert_child(&create, one(&trace, "POST /orders"));
    assert_child(one(&trace, "persistOrder"), &create);
    assert_child(one(&trace, "idempotency.complete"), &create);
    assert_child(one(&trace, "POST /charge"), one(&trace, "POST"));
}

#[actix_web::test]
async fn malformed_requests_do_not_flood_the_log() {
    let service = processes::spawn(
        "order-service",
        &[
            ("OTEL_SDK_DISABLED", "true".into()),
            ("PAYMENT_SERVICE_URL", "http://127.0.0.1:9".into()),
        ],
    );
    let address = service.url.trim_start_matches("http://").to_owned();
    let logged = || service.log.lock().unwrap().len();
    let before = logged();
    for _ in 0..200 {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream
            .write_all(b"GARBAGE\x01 /orders HTTP/1.1\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        assert!(
            answer.starts_with(b"HTTP/1.1 400"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
    // Stopped, it has written its whole log: "order-service stopped" last.
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &service.pid().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !service
        .log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("order-service stopped"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "it never logged its stop"
        );
        actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Only the stop itself: nothing from actix's request parser.
    let log = service.log.lock().unwrap();
    let parse_errors = log[before..]
        .iter()
        .filter(|l| l.contains("actix_http") || l.contains("\"ERROR\""))
        .count();
    let first = &log[before..(before + 2).min(log.len())];
    assert_eq!(parse_errors, 0, "the first lines: {first:?}");
    assert!(log.len() - before < 20, "the first lines: {first:?}");
}

/// A caller from outside cannot join a trace of its choosing, nor choose
/// whether ours is sampled: order-service starts a trace of its own, with
/// the caller's context as a link on its root, and payment-service joins
/// order-service's trace.
#[actix_web::test]
async fn a_callers_traceparent_is_linked_not_joined_at_the_public_edge() {
    let collector = Collector::start();
    let pair = spawn_pair(&collector.endpoint, &[("TRUST_TRACEPARENT", "false")], &[]);
    for sampled in [true, false] {
        let caller_trace = uuid::Uuid::new_v4().simple().to_string();
        let caller_span = &uuid::Uuid::new_v4().simple().to_string()[..16];
        let flags = if sampled { "01" } else { "00" };
        let header = format!("00-{caller_trace}-{caller_span}-{flags}");
        let (status, body) = post_order(&pair.order.url, &header, None).await;
        assert_eq!(status, 201, "{body}");

        let root = collector.await_linked("POST /orders", &caller_trace).await;
        assert_ne!(root.trace_id, caller_trace, "a trace of its own");
        assert_eq!(root.parent_span_id, "", "a root, not the caller's child");
        assert_eq!(root.links, [(caller_trace.clone(), caller_span.to_owned())]);
        let trace = collector
            .await_trace(&root.trace_id, &["createOrder", "POST /charge"])
            .await;
        assert_eq!(one(&trace, "POST /charge").service, "payment-service");
        assert_eq!(
            one(&trace, "createOrder").attr("order.id"),
            body["order_id"].as_str()
        );
    }
}
