//! Orders' writes sharing transactions on PostgreSQL (`store/postgres/
//! batch.rs`): each write gets its own true answer, whatever the
//! transaction it went in did. To know which writes share one, a test
//! holds the orders table's lock: the first write's transaction waits on
//! it, and every write sent meanwhile queues for the next one.

use actors::idempotency::{Holder, KeyBackend, Reservation, Reserve};
use common::domain::{Amount, Currency, MerchantId, OrderId};
use futures_util::FutureExt;
use futures_util::future::join_all;
use order_service::domain::{Order, OrderStatus};
use order_service::store::{OrderStore, PgStore, StoreError, Updated};
use tracing::Span;

use crate::database::TestDb;
use crate::helpers::{eventually, order_config};

fn order(merchant: &str) -> Order {
    Order {
        order_id: OrderId::new(),
        status: OrderStatus::Pending,
        merchant_id: MerchantId::parse(merchant).unwrap(),
        amount: Amount::from_decimal("12.34".parse().unwrap()).unwrap(),
        currency: Currency::parse("EUR").unwrap(),
        transaction_id: None,
        reason: None,
        created_at: chrono::DateTime::from_timestamp_micros(chrono::Utc::now().timestamp_micros())
            .unwrap(),
        maybe_charged: false,
        calls: 1,
    }
}

/// The orders table locked against writes until [`Locked::release`].
struct Locked(tokio_postgres::Client);

impl Locked {
    async fn take(db: &TestDb) -> Self {
        let client = db.client().await;
        client
            .batch_execute("BEGIN; LOCK TABLE orders IN SHARE ROW EXCLUSIVE MODE")
            .await
            .unwrap();
        Self(client)
    }

    /// Sends `write` in a task of its own and waits until its statement
    /// waits for the lock: every write sent from then on queues for the
    /// next statement.
    async fn first<T: Send + 'static>(
        &self,
        db: &TestDb,
        write: impl Future<Output = T> + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        let first = tokio::spawn(write);
        eventually("a statement waits for the lock", || async {
            db.count("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
                .await
                >= 1
        })
        .await;
        first
    }

    async fn release(self) {
        self.0.batch_execute("ROLLBACK").await.unwrap();
    }

    /// Releases the lock once `queued` has been polled (a write queues on
    /// its first poll; `join_all` of at most 30 polls all of them each
    /// time), and answers what `queued` does.
    async fn release_after<T>(self, queued: impl Future<Output = T>) -> T {
        let release = async {
            tokio::task::yield_now().await;
            self.release().await
        };
        tokio::join!(queued, release).0
    }
}

/// A store on a migrated database of its own.
async fn store(db: &TestDb, timeout_ms: u64) -> PgStore {
    let mut config = order_config();
    config.database.timeout_ms = timeout_ms;
    let store = db.store(&config);
    store.migrate().await.unwrap();
    store
}

/// The database refuses (`ERROR`) every `op` (`INSERT`, `UPDATE`) of an
/// order of `merchant_bad`.
async fn refuse_merchant_bad(db: &TestDb, op: &str) {
    let sql = format!(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
         CREATE TRIGGER refuse BEFORE {op} ON orders FOR EACH ROW
             WHEN (NEW.merchant_id = 'merchant_bad') EXECUTE FUNCTION refuse();"
    );
    db.client().await.batch_execute(&sql).await.unwrap();
}

/// Every new order of `merchant_slow` takes 10 s (longer than any test's
/// statement timeout).
async fn slow_merchant_slow(db: &TestDb) {
    db.client()
        .await
        .batch_execute(
            "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN PERFORM pg_sleep(10); RETURN NEW; END $$;
             CREATE TRIGGER slow BEFORE INSERT ON orders FOR EACH ROW
                 WHEN (NEW.merchant_id = 'merchant_slow') EXECUTE FUNCTION slow();",
        )
        .await
        .unwrap();
}

/// Transactions that wrote the orders table's rows, as they stand.
async fn writers(db: &TestDb) -> i64 {
    db.count("SELECT count(DISTINCT xmin::text) FROM orders")
        .await
}

#[actix_web::test]
async fn orders_sent_together_share_one_statement_and_each_gets_its_own_answer() {
    let db = TestDb::create().await;
    let store = store(&db, 5_000).await;
    let lock = Locked::take(&db).await;
    let first = order("merchant_1");
    let first_write = lock
        .first(&db, {
            let (store, first) = (store.clone(), first.clone());
            async move { store.insert(first).await }
        })
        .await;
    // 29 new orders, and the first one's id again: queued together.
    let mut queued: Vec<Order> = (0..29).map(|_| order("merchant_1")).collect();
    queued.push(first.clone());
    let answers = lock
        .release_after(join_all(queued.iter().map(|o| store.insert(o.clone()))))
        .await;
    first_write.await.unwrap().unwrap();
    for (order, answer) in queued.iter().zip(&answers).take(29) {
        assert!(answer.is_ok(), "{answer:?}");
        assert_eq!(
            store.get(order.order_id).await.unwrap().as_ref(),
            Some(order)
        );
    }
    assert!(
        matches!(answers[29], Err(StoreError::Duplicate(id)) if id == first.order_id),
        "{:?}",
        answers[29]
    );
    assert_eq!(db.count("SELECT count(*) FROM orders").await, 30);
    assert_eq!(writers(&db).await, 2, "the first write, then the 29 queued");
}

#[actix_web::test]
async fn a_row_the_database_refuses_fails_alone_and_the_rest_of_its_statement_is_written() {
    let db = TestDb::create().await;
    let store = store(&db, 5_000).await;
    refuse_merchant_bad(&db, "INSERT").await;
    let lock = Locked::take(&db).await;
    let first = lock
        .first(&db, {
            let store = store.clone();
            async move { store.insert(order("merchant_1")).await }
        })
        .await;
    let mut queued: Vec<Order> = (0..9).map(|_| order("merchant_1")).collect();
    queued.insert(4, order("merchant_bad"));
    let answers = lock
        .release_after(join_all(queued.iter().map(|o| store.insert(o.clone()))))
        .await;
    first.await.unwrap().unwrap();
    for (order, answer) in queued.iter().zip(answers) {
        let stored = store.get(order.order_id).await.unwrap();
        if order.merchant_id.as_str() == "merchant_bad" {
            // Refused: rolled back, so nothing was written, and it says so.
            assert!(
                matches!(answer, Err(StoreError::Unavailable(_))),
                "{answer:?}"
            );
            assert_eq!(stored, None);
        } else {
            assert!(answer.is_ok(), "{answer:?}");
            assert_eq!(stored.as_ref(), Some(order));
        }
    }
}

#[actix_web::test]
async fn a_write_whose_caller_went_away_before_a_statement_took_it_is_never_written() {
    let db = TestDb::create().await;
    let store = store(&db, 5_000).await;
    let lock = Locked::take(&db).await;
    let taken = order("merchant_1");
    let taken_write = lock
        .first(&db, {
            let (store, taken) = (store.clone(), taken.clone());
            async move { store.insert(taken).await }
        })
        .await;
    // Queued (one poll), then dropped, as a request whose client hung up.
    let gone = order("merchant_1");
    assert!(store.insert(gone.clone()).now_or_never().is_none());
    lock.release().await;
    taken_write.await.unwrap().unwrap();
    // The queue is served in order: once a later write is answered, the
    // one whose caller went away was passed over for good.
    store.insert(order("merchant_1")).await.unwrap();
    assert_eq!(store.get(gone.order_id).await.unwrap(), None);
    assert_eq!(store.get(taken.order_id).await.unwrap(), Some(taken));
}

#[actix_web::test]
async fn outcomes_sent_together_each_follow_their_own_compare_and_set() {
    let db = TestDb::create().await;
    let store = store(&db, 5_000).await;
    let orders: Vec<Order> = (0..6).map(|_| order("merchant_1")).collect();
    for o in &orders {
        store.insert(o.clone()).await.unwrap();
    }
    let failed = |o: &Order| Order {
        status: OrderStatus::Failed,
        ..o.clone()
    };
    // Settled already: a later compare-and-set from `pending` is stale.
    store
        .update(completed(&orders[0]), OrderStatus::Pending)
        .await
        .unwrap();
    let lock = Locked::take(&db).await;
    let first = lock
        .first(&db, {
            let (store, o) = (store.clone(), completed(&orders[5]));
            async move { store.update(o, OrderStatus::Pending).await }
        })
        .await;
    let behind = Order {
        calls: 0,
        ..failed(&orders[3])
    };
    let claim = Order {
        calls: 2,
        ..orders[4].clone()
    };
    let stale_claim = Order {
        calls: 3,
        ..orders[2].clone()
    };
    let writes = [
        (failed(&orders[0]), false),
        (completed(&orders[1]), false),
        (stale_claim, true),
        (behind, false),
        (claim.clone(), true),
    ];
    let writes = writes.into_iter().map(|(o, claiming)| {
        let store = store.clone();
        async move {
            match claiming {
                true => store.claim(o, OrderStatus::Pending).await,
                false => store.update(o, OrderStatus::Pending).await,
            }
        }
    });
    let answers = lock.release_after(join_all(writes)).await;
    assert_eq!(first.await.unwrap().unwrap(), Updated::Written);
    let answers: Vec<Updated> = answers.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        answers[0],
        Updated::Stale(completed(&orders[0])),
        "settled before"
    );
    assert_eq!(answers[1], Updated::Written);
    assert_eq!(
        answers[2],
        Updated::Stale(orders[2].clone()),
        "claimed from a count it never read"
    );
    assert_eq!(
        answers[3],
        Updated::Stale(orders[3].clone()),
        "a failure from behind the count"
    );
    assert_eq!(answers[4], Updated::Written);
    assert_eq!(store.get(orders[4].order_id).await.unwrap(), Some(claim));
    assert_eq!(
        store.get(orders[1].order_id).await.unwrap(),
        Some(completed(&orders[1]))
    );
}

/// `n` pending orders, written; their `completed` outcomes, and `n` new
/// orders, queued together behind a held lock, then answered.
async fn new_orders_and_outcomes_together(
    db: &TestDb,
    store: &PgStore,
    settled: &[Order],
    new: &[Order],
) -> (
    Vec<Result<Updated, StoreError>>,
    Vec<Result<(), StoreError>>,
) {
    for o in settled {
        store.insert(o.clone()).await.unwrap();
    }
    let lock = Locked::take(db).await;
    let first = lock
        .first(db, {
            let store = store.clone();
            async move { store.insert(order("merchant_1")).await }
        })
        .await;
    let outcomes = join_all(
        settled
            .iter()
            .map(|o| store.update(completed(o), OrderStatus::Pending)),
    );
    let inserts = join_all(new.iter().map(|o| store.insert(o.clone())));
    let answers = lock
        .release_after(async { tokio::join!(outcomes, inserts) })
        .await;
    first.await.unwrap().unwrap();
    answers
}

/// `o` was placed (answered written, stored as sent).
async fn assert_placed(store: &PgStore, o: &Order, answer: Result<(), StoreError>) {
    answer.unwrap();
    assert_eq!(store.get(o.order_id).await.unwrap().as_ref(), Some(o));
}

/// `o`'s `completed` outcome was written (answered, and stored).
async fn assert_completed(store: &PgStore, o: &Order, answer: Result<Updated, StoreError>) {
    assert_eq!(answer.unwrap(), Updated::Written);
    assert_eq!(store.get(o.order_id).await.unwrap(), Some(completed(o)));
}

fn completed(o: &Order) -> Order {
    Order {
        status: OrderStatus::Completed,
        transaction_id: Some(format!("txn-{}", o.order_id)),
        ..o.clone()
    }
}

#[actix_web::test]
async fn new_orders_and_outcomes_sent_together_commit_in_one_transaction() {
    let db = TestDb::create().await;
    let store = store(&db, 5_000).await;
    let settled: Vec<Order> = (0..5).map(|_| order("merchant_1")).collect();
    let new: Vec<Order> = (0..5).map(|_| order("merchant_1")).collect();
    let (outcomes, inserts) = new_orders_and_outcomes_together(&db, &store, &settled, &new).await;
    for (o, answer) in settled.iter().zip(outcomes) {
        assert_completed(&store, o, answer).await;
    }
    for (o, answer) in new.iter().zip(inserts) {
        assert_placed(&store, o, answer).await;
    }
    let ids: Vec<uuid::Uuid> = settled
        .iter()
        .chain(&new)
        .map(|o| o.order_id.as_uuid())
        .collect();
    let transactions = db
        .client()
        .await
        .query_one(
            "SELECT count(DISTINCT xmin::text) FROM orders WHERE order_id = ANY($1)",
            &[&ids],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(
        transactions, 1,
        "the outcomes and the new orders, one commit"
    );
}

#[actix_web::test]
async fn an_outcome_the_database_refuses_fails_alone_and_the_new_orders_beside_it_are_written() {
    let db = TestDb::create().await;
    let store = store(&db, 5_000).await;
    refuse_merchant_bad(&db, "UPDATE").await;
    let settled = vec![
        order("merchant_1"),
        order("merchant_bad"),
        order("merchant_1"),
    ];
    let new: Vec<Order> = (0..4).map(|_| order("merchant_1")).collect();
    let (outcomes, inserts) = new_orders_and_outcomes_together(&db, &store, &settled, &new).await;
    for (o, answer) in settled.iter().zip(outcomes) {
        if o.merchant_id.as_str() == "merchant_bad" {
            // Rolled back, and it says nothing was written.
            assert!(
                matches!(answer, Err(StoreError::Unavailable(_))),
                "{answer:?}"
            );
            assert_eq!(store.get(o.order_id).await.unwrap().as_ref(), Some(o));
        } else {
            assert_completed(&store, o, answer).await;
        }
    }
    for (o, answer) in new.iter().zip(inserts) {
        assert_placed(&store, o, answer).await;
    }
}

#[actix_web::test]
async fn a_slow_write_leaves_the_writes_beside_it_time_to_be_written_alone() {
    let db = TestDb::create().await;
    let store = store(&db, 1_500).await;
    slow_merchant_slow(&db).await;
    let settled: Vec<Order> = (0..3).map(|_| order("merchant_1")).collect();
    let mut new: Vec<Order> = (0..3).map(|_| order("merchant_1")).collect();
    new.insert(1, order("merchant_slow"));
    let (outcomes, inserts) = new_orders_and_outcomes_together(&db, &store, &settled, &new).await;
    // Charged orders' outcomes, and the other new orders: written, in time.
    for (o, answer) in settled.iter().zip(outcomes) {
        assert_completed(&store, o, answer).await;
    }
    for (o, answer) in new.iter().zip(inserts) {
        if o.merchant_id.as_str() == "merchant_slow" {
            assert!(answer.is_err(), "{answer:?}");
            assert_eq!(store.get(o.order_id).await.unwrap(), None);
        } else {
            assert_placed(&store, o, answer).await;
        }
    }
}

#[actix_web::test]
async fn a_slow_write_alone_does_not_hold_up_the_writes_queued_behind_it() {
    let db = TestDb::create().await;
    let store = store(&db, 1_500).await;
    slow_merchant_slow(&db).await;
    let settled: Vec<Order> = (0..3).map(|_| order("merchant_1")).collect();
    for o in &settled {
        store.insert(o.clone()).await.unwrap();
    }
    let slow = tokio::spawn({
        let store = store.clone();
        async move { store.insert(order("merchant_slow")).await }
    });
    eventually("the slow write is under way", || async {
        db.count("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'")
            .await
            >= 1
    })
    .await;
    let outcomes = settled
        .iter()
        .map(|o| store.update(completed(o), OrderStatus::Pending));
    for answer in join_all(outcomes).await {
        assert_eq!(answer.unwrap(), Updated::Written);
    }
    assert!(
        !slow.is_finished(),
        "the outcomes were written while the slow write was still under way"
    );
    assert!(slow.await.unwrap().is_err());
}

#[actix_web::test]
async fn an_order_written_alone_goes_on_while_a_slow_write_beside_it_is_retried() {
    let db = TestDb::create().await;
    let store = store(&db, 1_500).await;
    slow_merchant_slow(&db).await;
    let lock = Locked::take(&db).await;
    let first = lock
        .first(&db, {
            let store = store.clone();
            async move { store.insert(order("merchant_1")).await }
        })
        .await;
    let fast = order("merchant_1");
    // Placed beside the slow one, then settled at once.
    let placed_then_settled = async {
        store.insert(fast.clone()).await.unwrap();
        let settled = store.update(completed(&fast), OrderStatus::Pending).await;
        (settled, std::time::Instant::now())
    };
    let slow = async {
        let answer = store.insert(order("merchant_slow")).await;
        (answer, std::time::Instant::now())
    };
    let ((settled, settled_at), (slow, slow_at)) = lock
        .release_after(async { tokio::join!(placed_then_settled, slow) })
        .await;
    first.await.unwrap().unwrap();
    assert_eq!(settled.unwrap(), Updated::Written);
    assert!(slow.is_err(), "{slow:?}");
    assert!(
        settled_at < slow_at,
        "the order was settled while the slow write was still under way"
    );
}

#[actix_web::test]
async fn writes_whose_callers_hung_up_after_they_were_taken_still_end_and_free_their_orders() {
    let db = TestDb::create().await;
    let store = store(&db, 1_500).await;
    slow_merchant_slow(&db).await;
    let lock = Locked::take(&db).await;
    // Taken, its transaction waiting for the lock: then its caller goes.
    let taken = order("merchant_1");
    let first = lock
        .first(&db, {
            let (store, taken) = (store.clone(), taken.clone());
            async move { store.insert(taken).await }
        })
        .await;
    first.abort();
    // Queued beside a slow write, so refused with it and retried alone:
    // their callers go while the slow one is under way.
    let beside = order("merchant_1");
    let queued = [beside.clone(), order("merchant_slow")];
    let inserts = join_all(queued.iter().map(|o| store.insert(o.clone())));
    let slow_under_way = eventually("the slow write is under way", || async {
        db.count("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'")
            .await
            >= 1
    });
    lock.release_after(async {
        tokio::select! {
            biased;
            answers = inserts => panic!("answered before the slow write was under way: {answers:?}"),
            () = slow_under_way => {}
        }
    })
    .await;
    // Each order's write ended (committed: nothing tells its caller), and
    // its order is free for its next write.
    for o in [&taken, &beside] {
        eventually("the write committed", || async {
            store.get(o.order_id).await.unwrap().is_some()
        })
        .await;
        let answer = store.update(completed(o), OrderStatus::Pending).await;
        assert_completed(&store, o, answer).await;
    }
}

#[actix_web::test]
async fn one_key_reserved_many_times_in_one_statement_makes_one_order() {
    let db = TestDb::create().await;
    let store = store(&db, 5_000).await;
    let lock = Locked::take(&db).await;
    let first = lock
        .first(&db, {
            let store = store.clone();
            async move { store.insert(order("merchant_1")).await }
        })
        .await;
    let records: Vec<Order> = (0..8).map(|_| order("merchant_1")).collect();
    let reservations = records.into_iter().map(|record| {
        store.reserve(Reserve {
            key: "one-key".into(),
            fingerprint: "same-body".into(),
            order_id: record.order_id,
            holder: Holder::next(),
            record,
            span: Span::none(),
        })
    });
    let reservations = lock.release_after(join_all(reservations)).await;
    first.await.unwrap().unwrap();
    let reservations: Vec<_> = reservations.into_iter().map(Result::unwrap).collect();
    let new = reservations
        .iter()
        .filter(|r| matches!(r, Reservation::New))
        .count();
    assert_eq!(new, 1, "{reservations:?}");
    for r in &reservations {
        assert!(
            matches!(r, Reservation::New | Reservation::InFlight { .. }),
            "{r:?}"
        );
    }
    // The key's order, and no other of the eight.
    assert_eq!(db.count("SELECT count(*) FROM idempotency_keys").await, 1);
    assert_eq!(
        db.count(
            "SELECT count(*) FROM orders o JOIN idempotency_keys k USING (order_id)
             WHERE k.key = 'one-key'"
        )
        .await,
        1
    );
    assert_eq!(db.count("SELECT count(*) FROM orders").await, 2);
}

#[actix_web::test]
async fn writes_go_on_after_the_runtime_that_sent_one_stops() {
    let db = TestDb::create().await;
    let store = store(&db, 1_000).await;
    // A write queued from a runtime that then stops (an HTTP worker shut
    // down) before anything else runs on it.
    let sender = store.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut write = Box::pin(sender.insert(order("merchant_1")));
            assert!(futures_util::poll!(write.as_mut()).is_pending());
        });
    })
    .join()
    .unwrap();
    for _ in 0..3 {
        let written = order("merchant_1");
        store.insert(written.clone()).await.unwrap();
        assert_eq!(store.get(written.order_id).await.unwrap(), Some(written));
    }
}
