//! The two load models.
//!
//! **Closed** (default): `concurrency` virtual users, each on its own
//! connection, send back to back; latency is from send to answer. With
//! stages, the number of active users follows the ramp.
//!
//! **Open** (`--rate`, or a rate ramp with `--stages`): a scheduler emits
//! each request's *intended* send time at the arrival rate, and connections
//! pick them up. When the server stalls and every connection is busy,
//! scheduled requests wait — and their latency, measured from the intended
//! time, includes that wait. A closed-model tool would instead stop sending
//! during the stall and report only the fast answers (coordinated omission).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::mpsc;

use crate::breaker::{self, Followed};
use crate::client::{Connection, Outcome};
pub use crate::plan::{Plan, Stop};
use crate::report::{self, Recorder, Report};

struct Shared {
    plan: Plan,
    start: Instant,
    issued: AtomicU64,
    recorder: Mutex<Recorder>,
    /// The breaker, when followed (`--breaker`).
    followed: Option<Arc<Mutex<Followed>>>,
    /// Ctrl-C: no new request starts.
    interrupted: AtomicBool,
}

impl Shared {
    fn recorder(&self) -> std::sync::MutexGuard<'_, Recorder> {
        lock(&self.recorder)
    }

    /// Whether the run is over for a request about to start now.
    fn over(&self, now: Instant) -> bool {
        if self.interrupted.load(Ordering::Relaxed) {
            return true;
        }
        match self.plan.stop {
            Stop::After(duration) => now.duration_since(self.start) >= duration,
            Stop::Count(n) => self.issued.load(Ordering::Relaxed) >= n,
        }
    }
}

/// The whole run: the load with the breaker followed beside it, then the
/// audit and the marks.
pub async fn run(plan: Plan) -> Report {
    let start = Instant::now();
    // Before the first request: the audit weighs the charges made since.
    let start_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let (followed, follower) = follow_breaker(&plan, start).await;
    let shared = Arc::new(Shared {
        recorder: Mutex::new(Recorder::new(start, plan.spec.want_order_id)),
        plan,
        start,
        issued: AtomicU64::new(0),
        followed,
        interrupted: AtomicBool::new(false),
    });
    let progress = tokio::spawn(progress(shared.clone()));
    let interrupt = shared.plan.interruptible.then(|| {
        let shared = shared.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\nloadgen: interrupted; finishing the requests in flight");
                shared.interrupted.store(true, Ordering::Relaxed);
            }
        })
    });
    load(&shared).await;
    for task in [Some(progress), interrupt, follower].into_iter().flatten() {
        task.abort();
        let _ = task.await;
    }
    let elapsed = start.elapsed();
    let shared = Arc::try_unwrap(shared).unwrap_or_else(|_| unreachable!("every task has ended"));
    conclude(shared, elapsed, start_unix_ms).await
}

type Follower = (
    Option<Arc<Mutex<Followed>>>,
    Option<tokio::task::JoinHandle<()>>,
);

/// Follows the breaker's events beside the load (`--breaker`); the run
/// starts from a known state when the stream answers at once.
async fn follow_breaker(plan: &Plan, start: Instant) -> Follower {
    let Some(url) = plan.breaker.clone() else {
        return (None, None);
    };
    let followed = Arc::new(Mutex::new(Followed::default()));
    let follower = tokio::spawn(breaker::follow(
        url,
        plan.admin_token.clone(),
        start,
        followed.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(2);
    while lock(&followed).current().is_none()
        && lock(&followed).trouble.is_none()
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if let Some(trouble) = &lock(&followed).trouble {
        eprintln!("loadgen: breaker not followed yet: {trouble}");
    }
    (Some(followed), Some(follower))
}

/// The users (and, open, the scheduler), until the run is over.
async fn load(shared: &Arc<Shared>) {
    let plan = &shared.plan;
    let users = match (plan.open(), &plan.stages) {
        (false, Some(stages)) => (stages.peak().ceil() as usize).max(1),
        _ => plan.concurrency,
    };
    let mut tasks = Vec::with_capacity(users + 1);
    if plan.open() {
        let (tx, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        tasks.push(tokio::spawn(schedule(shared.clone(), tx)));
        for user in 0..users {
            let user = open_user(shared.clone(), rx.clone(), user as u64);
            tasks.push(tokio::spawn(user));
        }
    } else {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        for first in 0..threads.min(users) {
            let shared = shared.clone();
            tasks.push(tokio::task::spawn_blocking(move || {
                closed_users(shared, (first..users).step_by(threads))
            }));
        }
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// Closed-model users on a thread of their own, as wrk runs its
/// connections: each thread is one event loop, so an answer wakes the task
/// that waits for it on the thread that polls the socket, never another
/// thread (a multi-thread runtime's cross-thread wakes and stealing left
/// loadgen at ~0.9 of wrk's requests/s on a health check here).
fn closed_users(shared: Arc<Shared>, users: impl Iterator<Item = usize>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the users");
    let local = tokio::task::LocalSet::new();
    for user in users {
        local.spawn_local(closed_user(shared.clone(), user));
    }
    runtime.block_on(local);
}

/// The report of a run that has ended: its answers, the breaker's band,
/// the marks, and the audit of payment's ledger.
async fn conclude(shared: Shared, elapsed: Duration, start_unix_ms: i64) -> Report {
    let plan = shared.plan;
    // A stream that never answered leaves the band to the answers.
    let breaker = shared
        .followed
        .map(|followed| std::mem::take(&mut lock(&followed).changes))
        .filter(|changes| !changes.is_empty());
    let recorder = shared
        .recorder
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    let replay = recorder.replay;
    let mut report = recorder.finish(
        elapsed,
        if plan.open() { "open" } else { "closed" },
        plan.concurrency,
        plan.rate.filter(|_| plan.stages.is_none()),
    );
    if plan.replay_pct > 0.0 {
        report.replay = Some(replay);
    }
    report.breaker = breaker;
    if let Some(path) = &plan.marks {
        // A file not written yet means nothing was marked.
        let text = std::fs::read_to_string(path).unwrap_or_default();
        // Within the timeline, which ends at the last request sent.
        let end_ms = report
            .timeline
            .last()
            .map_or(0, |b| b.start_ms + b.width_ms);
        report.marks = report::marks_within(&text, start_unix_ms, end_ms);
    }
    if let Some(payment) = &plan.audit {
        // The order ids of every 201 were collected for this.
        let orders = crate::audit::audit(
            payment,
            plan.admin_token.as_deref(),
            &plan.target,
            &report.created_order_ids,
            &report.none_order_ids,
            start_unix_ms,
        );
        match orders.await {
            Ok(audit) => report.audit = Some(audit),
            Err(e) => eprintln!("loadgen: audit failed: {e}"),
        }
    }
    report
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Open model: emits intended send times at the (possibly ramping) rate.
/// Time advances in 1 ms steps, each adding `rate × 1 ms` of credit; a
/// request is due whenever a whole unit has accrued. Integrating this way
/// follows a ramp from 0 exactly, where stepping by `1 / rate` would jump a
/// whole second at a rate of 1/s.
async fn schedule(shared: Arc<Shared>, tx: mpsc::UnboundedSender<Instant>) {
    const STEP: Duration = Duration::from_millis(1);
    let plan = &shared.plan;
    let mut at = shared.start;
    let mut credit = 0.0;
    loop {
        let rate = match &plan.stages {
            Some(stages) => match stages.target_at(at.saturating_duration_since(shared.start)) {
                Some(rate) => rate,
                None => return,
            },
            None => plan.rate.unwrap_or(0.0),
        };
        credit += rate * STEP.as_secs_f64();
        // A hair under 1 counts: 0.1 added ten times is 0.9999999999999999.
        while credit >= 1.0 - 1e-9 {
            if shared.over(at) || tx.send(at).is_err() {
                return;
            }
            shared.issued.fetch_add(1, Ordering::Relaxed);
            credit -= 1.0;
        }
        if shared.over(at) {
            return;
        }
        at += STEP;
        if at > Instant::now() {
            tokio::time::sleep_until(at.into()).await;
        }
    }
}

async fn open_user(
    shared: Arc<Shared>,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Instant>>>,
    user: u64,
) {
    let mut connection = Connection::default();
    let mut rng = StdRng::seed_from_u64(shared.plan.seed.wrapping_add(user));
    loop {
        let intended = match rx.lock().await.recv().await {
            Some(at) if !shared.interrupted.load(Ordering::Relaxed) => at,
            _ => break,
        };
        one_request(&shared, &mut connection, &mut rng, intended).await;
    }
}

async fn closed_user(shared: Arc<Shared>, user: usize) {
    let mut connection = Connection::default();
    let mut rng = StdRng::seed_from_u64(shared.plan.seed.wrapping_add(user as u64));
    loop {
        let now = Instant::now();
        if let Some(stages) = &shared.plan.stages {
            match stages.target_at(now.duration_since(shared.start)) {
                None => break,
                Some(active) if (user as f64) >= active.ceil() => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                Some(_) => {}
            }
        }
        if shared.interrupted.load(Ordering::Relaxed) {
            break;
        }
        if let Stop::Count(n) = shared.plan.stop {
            if shared.issued.fetch_add(1, Ordering::Relaxed) >= n {
                break;
            }
        } else if shared.over(now) {
            break;
        }
        one_request(&shared, &mut connection, &mut rng, now).await;
    }
}

/// One request (and maybe its replay), recorded from `since`.
async fn one_request(
    shared: &Shared,
    connection: &mut Connection,
    rng: &mut StdRng,
    since: Instant,
) {
    let plan = &shared.plan;
    let key = plan
        .idempotent
        .then(|| format!("loadgen-{}", uuid::Uuid::new_v4()));
    let replay = key.is_some() && rng.random_range(0.0..100.0) < plan.replay_pct;
    let concurrent = replay && rng.random_bool(0.5);
    let send = connection.send(&plan.target, &plan.spec, key.as_deref(), plan.timeout);
    let (outcome, concurrent_replay) = if concurrent {
        let mut other = Connection::default();
        let again = other.send(&plan.target, &plan.spec, key.as_deref(), plan.timeout);
        let (outcome, again) = tokio::join!(send, again);
        (outcome, Some(again))
    } else {
        (send.await, None)
    };
    shared.recorder().record(since, since.elapsed(), &outcome);
    if replay {
        let again = match concurrent_replay {
            Some(again) => again,
            None => {
                connection
                    .send(&plan.target, &plan.spec, key.as_deref(), plan.timeout)
                    .await
            }
        };
        let mut recorder = shared.recorder();
        let stats = &mut recorder.replay;
        stats.sent += 1;
        stats.concurrent += u64::from(concurrent);
        let refused = |o: &Outcome| matches!(o, Outcome::Response { status: 409, .. });
        match (order_of(&outcome), order_of(&again)) {
            (Some(a), Some(b)) if a == b => stats.same_order += 1,
            (Some(_), Some(_)) => stats.violations += 1,
            _ if refused(&outcome) || refused(&again) => stats.in_flight += 1,
            _ => stats.not_comparable += 1,
        }
    }
}

fn order_of(outcome: &Outcome) -> Option<&str> {
    match outcome {
        Outcome::Response {
            status: 200..=299,
            order_id: Some(id),
            ..
        } => Some(id),
        _ => None,
    }
}

/// A live bar when stdout is a terminal; a plain line every 5 s otherwise.
async fn progress(shared: Arc<Shared>) {
    let bar = shared.plan.progress.then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let every = if bar.is_some() {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(5)
    };
    let mut last = (Instant::now(), 0, 0);
    loop {
        tokio::time::sleep(every).await;
        let (done, failed, refused) = shared.recorder().completed();
        let now = Instant::now();
        let rate = (done - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        let refused_now = refused - last.2;
        last = (now, done, refused);
        // The breaker as followed, else as the answers since the last line
        // show it.
        let breaker = match &shared.followed {
            Some(followed) => {
                let followed = lock(followed);
                match (followed.current(), &followed.trouble) {
                    (Some(state), None) => format!("breaker {state}"),
                    _ => "breaker not followed".to_owned(),
                }
            }
            None if refused_now > 0 => format!("breaker open ({refused_now} refused)"),
            None => "breaker not refusing".to_owned(),
        };
        let line = format!("{done} requests, {rate:.0}/s now, {failed} not 2xx, {breaker}");
        match &bar {
            Some(bar) => bar.set_message(line),
            None => eprintln!("progress: {line}"),
        }
    }
}
