//! Every answer stays true under load: three replicas on a private
//! PostgreSQL behind nginx, and clients that do exactly what each answer
//! tells them. `charge: "none"`: a new request, without the old key.
//! `charge: "unknown"`: read the order until it is `completed` or
//! `failed`, and only a failed one is tried again, anew. Half of them send
//! keys. Meanwhile the database is stopped (`-m immediate`), or frozen
//! (SIGSTOP past DATABASE_TIMEOUT_MS, then resumed: what it held commits
//! late), or one replica alone is cut off from it.
//!
//! Audited per purchase, once quiet: at most one charge for each, exactly
//! one for each that ended with a 201; no order answered "none" has a
//! charge; and the invariant of every other row.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::Value;

use crate::link::Link;
use crate::replicas::PrivatePg;
use crate::{BODY, CLIENTS, ORDERS, Seen, Stack, check, print_header, reroute, settle_and_check};

/// How long one purchase may take, all its requests and reads included.
const PURCHASE_WITHIN: Duration = Duration::from_secs(30);
/// Before a new request after "none" (a test's client does not wait the
/// whole `Retry-After`).
const PAUSE: Duration = Duration::from_millis(50);

/// What one purchase was told, and how it ended.
#[derive(Default)]
pub struct Purchase {
    /// Every order an answer named.
    orders: Vec<String>,
    /// Orders answered "nothing was charged".
    none: Vec<String>,
    /// The order a 201 named, or that was read `completed`.
    completed: Option<String>,
    gave_up: bool,
}

/// What the clients learned, summed.
#[derive(Default)]
pub struct Told {
    none: usize,
    pub unknown: usize,
    /// Answers without a `charge` member (not order-service's).
    silent: usize,
    /// Error answers by status and problem type.
    kinds: BTreeMap<String, usize>,
    latencies_us: Vec<u64>,
    /// Each 201: when its request was sent, and when it was answered.
    pub created: Vec<(Instant, Instant)>,
}

/// One answer to `POST /orders`: status and body, or none at all.
async fn post(stack: &Stack, key: Option<&str>) -> Option<(u16, Value)> {
    let mut request = stack
        .client
        .post(format!("{}/orders", stack.order_url))
        .insert_header(("Content-Type", "application/json"));
    if let Some(key) = key {
        request = request.insert_header(("Idempotency-Key", key));
    }
    let mut res = request.send_body(BODY).await.ok()?;
    let body = res.body().await.ok()?;
    Some((
        res.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    ))
}

/// Reads the order until it is `completed` or `failed`.
async fn final_status(stack: &Stack, id: &str, until: Instant) -> Option<String> {
    while Instant::now() < until {
        if let Some((200, order)) = stack.get(format!("{}/orders/{id}", stack.order_url)).await
            && let Some(status @ ("completed" | "failed")) = order["status"].as_str()
        {
            return Some(status.to_owned());
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// One purchase, as an obedient client makes it.
async fn purchase(stack: &Stack, name: &str, keyed: bool, told: &Mutex<Told>) -> Purchase {
    let mut done = Purchase::default();
    let until = Instant::now() + PURCHASE_WITHIN;
    // A new request takes a new key; the same request keeps its own.
    let new_key = || keyed.then(|| format!("{name}-{}", uuid::Uuid::new_v4()));
    let mut key = new_key();
    loop {
        if Instant::now() > until {
            done.gave_up = true;
            return done;
        }
        // A lost answer, or one not order-service's: the same request
        // again, with its key; without one there is nothing to ask.
        let started = Instant::now();
        let answer = post(stack, key.as_deref()).await;
        let latency = started.elapsed().as_micros() as u64;
        told.lock().unwrap().latencies_us.push(latency);
        let Some((status, body)) = answer else {
            told.lock().unwrap().silent += 1;
            if keyed {
                continue;
            }
            done.gave_up = true;
            return done;
        };
        let id = body["order_id"].as_str().map(str::to_owned);
        done.orders.extend(id.clone());
        if status == 201 {
            told.lock().unwrap().created.push((started, Instant::now()));
            done.completed = id;
            return done;
        }
        let kind = body["type"].as_str().unwrap_or("").rsplit(':').next();
        let kind = format!("{status} {}", kind.unwrap_or(""));
        *told.lock().unwrap().kinds.entry(kind).or_default() += 1;
        match body["charge"].as_str() {
            Some("none") => {
                told.lock().unwrap().none += 1;
                done.none.extend(id);
                key = new_key();
                actix_rt::time::sleep(PAUSE).await;
            }
            Some("unknown") => {
                told.lock().unwrap().unknown += 1;
                let Some(id) = id else {
                    // The key could not be read: ask again with it.
                    actix_rt::time::sleep(PAUSE).await;
                    continue;
                };
                match final_status(stack, &id, until).await.as_deref() {
                    Some("completed") => {
                        done.completed = Some(id);
                        return done;
                    }
                    // Failed: never charged; a new request.
                    Some(_) => key = new_key(),
                    None => {
                        done.gave_up = true;
                        return done;
                    }
                }
            }
            _ => {
                told.lock().unwrap().silent += 1;
                actix_rt::time::sleep(PAUSE).await;
            }
        }
    }
}

/// `ORDERS` purchases by `CLIENTS` obedient clients, half of them keyed.
async fn purchases(stack: &Stack, name: &str, told: &Mutex<Told>) -> Vec<Purchase> {
    purchases_while(stack, name, told, |i| i < ORDERS / CLIENTS).await
}

/// Purchases by `CLIENTS` obedient clients, half of them keyed, until `stop`.
pub async fn purchases_until(
    stack: &Stack,
    name: &str,
    told: &Mutex<Told>,
    stop: &AtomicBool,
) -> Vec<Purchase> {
    purchases_while(stack, name, told, |_| !stop.load(SeqCst)).await
}

/// Each client's purchase `i` while `more(i)`.
async fn purchases_while(
    stack: &Stack,
    name: &str,
    told: &Mutex<Told>,
    more: impl Fn(usize) -> bool,
) -> Vec<Purchase> {
    let more = &more;
    let clients = (0..CLIENTS).map(|c| async move {
        let mut made = Vec::new();
        let mut i = 0;
        while more(i) {
            let name = format!("{name}-{c}-{i}");
            made.push(purchase(stack, &name, c % 2 == 0, told).await);
            i += 1;
        }
        made
    });
    join_all(clients).await.into_iter().flatten().collect()
}

/// How the database fails during the run.
#[derive(Clone, Copy)]
enum DbFault {
    Stopped,
    Frozen,
    OneReplicaCutOff,
}

/// Twice: the fault for about a second, then recovery.
async fn inflict(fault: DbFault, pg: &PrivatePg, link: &Link) {
    for _ in 0..2 {
        actix_rt::time::sleep(Duration::from_millis(400)).await;
        match fault {
            DbFault::Stopped => pg.stop_immediately(),
            DbFault::Frozen => pg.freeze(),
            DbFault::OneReplicaCutOff => link.crash(),
        }
        actix_rt::time::sleep(Duration::from_millis(1200)).await;
        match fault {
            DbFault::Stopped => pg.start_server(),
            DbFault::Frozen => pg.thaw(),
            DbFault::OneReplicaCutOff => link.restart(),
        }
    }
}

#[actix_web::test]
#[ignore = "chaos suite: run with `make chaos`"]
async fn every_answer_stays_true_when_the_database_fails_under_load() {
    let pg = PrivatePg::start();
    print_header();
    let faults = [
        ("PAYMENT_DELAY_MS", "100"),
        ("PAYMENT_FAIL_AFTER_CHARGE_PCT", "10"),
    ];
    for (name, db, fault) in [
        ("db stopped, obedient", "answers_stopped", DbFault::Stopped),
        ("db frozen, obedient", "answers_frozen", DbFault::Frozen),
        (
            "1 replica cut off",
            "answers_cut_off",
            DbFault::OneReplicaCutOff,
        ),
    ] {
        pg.create_database(db).await;
        let url = pg.url(db);
        let order_env = [
            ("DATABASE_URL", url.as_str()),
            ("DATABASE_TIMEOUT_MS", "500"),
            ("IDEMPOTENCY_LEASE_MS", "2000"),
            // Orders wait for permits: a phase of their own to fail in.
            ("BULKHEAD_MAX", "3"),
        ];
        // Replica 1 reaches the database through a link of its own.
        let link = Link::start(&format!("127.0.0.1:{}", pg.port)).await;
        let stack = Stack::start_wired(&faults, &order_env, 3, &|i, env| {
            if i == 1 {
                reroute(env, "DATABASE_URL", |url| link.url(url));
            }
        });
        let told = Mutex::new(Told::default());
        let (made, ()) =
            futures_util::join!(purchases(&stack, db, &told), inflict(fault, &pg, &link));
        audit_all(&stack, name, made, told.into_inner().unwrap()).await;
    }
}

/// Waits for quiet, then checks the invariant and every answer.
pub async fn audit_all(stack: &Stack, name: &str, made: Vec<Purchase>, mut told: Told) {
    let seen = Seen {
        order_ids: made.iter().flat_map(|p| p.orders.iter().cloned()).collect(),
        created: made.iter().filter_map(|p| p.completed.clone()).collect(),
        latencies_us: std::mem::take(&mut told.latencies_us),
        gave_up: 0,
    };
    let row = settle_and_check(stack, name, made.len(), seen).await;
    check(&row);
    let charges = charges_per_order(stack).await;
    audit(name, &made, &charges, &told);
}

async fn charges_per_order(stack: &Stack) -> HashMap<String, usize> {
    let mut charges = HashMap::new();
    for entry in stack.ledger_entries().await {
        *charges
            .entry(entry["order_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    charges
}

fn audit(name: &str, made: &[Purchase], charges: &HashMap<String, usize>, told: &Told) {
    let charged = |id: &String| charges.get(id).copied().unwrap_or(0);
    let twice = made
        .iter()
        .filter(|p| p.orders.iter().map(charged).sum::<usize>() > 1)
        .count();
    let lied: Vec<&String> = made
        .iter()
        .flat_map(|p| &p.none)
        .filter(|id| charged(id) > 0)
        .collect();
    let completed_uncharged = made
        .iter()
        .filter_map(|p| p.completed.as_ref())
        .filter(|id| charged(id) != 1)
        .count();
    let gave_up = made.iter().filter(|p| p.gave_up).count();
    println!(
        "  {name}: {} purchases, {} completed, {gave_up} given up; answers: none {}, unknown {}, \
         without charge {}; purchases charged twice {twice}, 'none' answers charged {}",
        made.len(),
        made.iter().filter(|p| p.completed.is_some()).count(),
        told.none,
        told.unknown,
        told.silent,
        lied.len(),
    );
    let kinds: Vec<String> = told
        .kinds
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect();
    println!("    error answers: {}", kinds.join(", "));
    assert_eq!(twice, 0, "{name}: purchases charged twice");
    assert!(lied.is_empty(), "{name}: answered none, charged: {lied:?}");
    assert_eq!(
        completed_uncharged, 0,
        "{name}: completed without one charge"
    );
    assert_eq!(told.silent, 0, "{name}: answers without a charge member");
    assert_eq!(gave_up, 0, "{name}: purchases that never ended");
}
