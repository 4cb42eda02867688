//! The two writes every order makes, as statements many orders share
//! ([`super::batch`]): a new order (`pending`, with its idempotency key or
//! without), and an outcome (the order's compare-and-set, with its key's
//! answer or without). Each statement takes its rows as arrays, one per
//! column, and answers the order ids it wrote.

use std::collections::VecDeque;

use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::PgStore;
use super::batch::{Entry, Params, Queue, Write};
use crate::domain::{Order, OrderStatus};

/// A new order, written with its key when it has one: the order only if
/// the key is new, so a key and its first order are written together or
/// not at all.
#[derive(Clone)]
pub(super) struct NewOrder {
    pub order: Order,
    /// W3C traceparent of the request: re-drives link to it.
    pub trace: Option<String>,
    pub key: Option<NewKey>,
}

#[derive(Clone)]
pub(super) struct NewKey {
    pub key: String,
    pub fingerprint: String,
    pub holder: Uuid,
}

/// An order's outcome, written only from the status its writer read and
/// never as a `failed` from a writer whose count of calls is behind; a
/// pending order is due again after the longest call, backing off with
/// its re-drives ([`crate::store::Redrives::backoff`]).
pub(super) struct Outcome {
    pub order: Order,
    pub from: OrderStatus,
    /// A claim: also requires the stored count of calls to be the one the
    /// claimer read (`order.calls - 1`).
    pub claiming: bool,
    /// The key's answer, completed only if the outcome is written.
    pub key: Option<KeyAnswer>,
}

pub(super) struct KeyAnswer {
    pub key: String,
    pub holder: Uuid,
    pub status: i16,
    pub headers: serde_json::Value,
    pub body: Vec<u8>,
}

/// A column of `writes` as one array parameter.
fn column<'a, W, T: ToSql + Sync + Send + 'a>(
    writes: &[&'a W],
    value: impl Fn(&'a W) -> T,
) -> Box<dyn ToSql + Sync + Send + 'a> {
    Box::new(writes.iter().map(|w| value(w)).collect::<Vec<T>>())
}

/// `$1`–`$10` of both statements: an order's columns.
fn order_columns<'a, W>(writes: &[&'a W], order: impl Fn(&'a W) -> &'a Order) -> Params<'a> {
    let o = &order;
    vec![
        column(writes, |w| o(w).order_id.as_uuid()),
        column(writes, |w| o(w).status.as_str()),
        column(writes, |w| o(w).merchant_id.as_str()),
        column(writes, |w| o(w).amount.value()),
        column(writes, |w| o(w).currency.code()),
        column(writes, |w| o(w).transaction_id.as_deref()),
        column(writes, |w| o(w).reason.as_deref()),
        column(writes, |w| o(w).created_at),
        column(writes, |w| o(w).maybe_charged),
        column(writes, |w| o(w).calls as i32),
    ]
}

/// The rows of `$1`–`$10`, then the statement's own columns.
macro_rules! input {
    ($($more:literal),*) => {
        concat!(
            "input AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[],
                 $4::numeric[], $5::text[], $6::text[], $7::text[],
                 $8::timestamptz[], $9::bool[], $10::int4[]",
            $(", ", $more,)*
            ") AS i(order_id, status, merchant_id, amount, currency, transaction_id,
                    reason, created_at, maybe_charged, calls"
        )
    };
}

impl Write for NewOrder {
    // `$15`–`$17`: the hold before a new order first falls due, the key's
    // lease and its TTL. Keys are inserted in key order, so that two
    // statements wait for each other's keys in one order, never in a
    // circle. A key taken already (or twice in one statement) writes
    // nothing; its order is not written, and its caller reads the key.
    const SQL: &'static str = concat!(
        "WITH ",
        input!("$11::text[]", "$12::text[]", "$13::text[]", "$14::uuid[]"),
        ", trace, key, fingerprint, holder)),
         new_key AS (
             INSERT INTO idempotency_keys
                 (key, fingerprint, order_id, holder, lease_until, expires_at)
             SELECT key, fingerprint, order_id, holder,
                    now() + $16 * interval '1 millisecond', now() + $17 * interval '1 second'
             FROM input WHERE key IS NOT NULL ORDER BY key
             ON CONFLICT (key) DO NOTHING
             RETURNING order_id)
         INSERT INTO orders (order_id, status, merchant_id, amount, currency,
             transaction_id, reason, created_at, maybe_charged, calls, due_at, trace)
         SELECT order_id, status, merchant_id, amount, currency, transaction_id, reason,
                created_at, maybe_charged, calls, now() + $15 * interval '1 millisecond', trace
         FROM input
         WHERE key IS NULL OR order_id IN (SELECT order_id FROM new_key)
         ON CONFLICT (order_id) DO NOTHING
         RETURNING order_id"
    );

    fn entries(queue: &mut Queue) -> &mut VecDeque<Entry<Self>> {
        &mut queue.new_orders
    }

    fn order_id(&self) -> Uuid {
        self.order.order_id.as_uuid()
    }

    fn params<'a>(store: &PgStore, writes: &[&'a Self]) -> Params<'a> {
        let s = store.settings();
        let [hold, ..] = store.due_params();
        let (lease, ttl) = (super::millis(s.key_lease), s.key_ttl.as_secs_f64());
        let mut params = order_columns(writes, |w| &w.order);
        params.extend([
            column(writes, |w| w.trace.as_deref()),
            column(writes, |w| w.key.as_ref().map(|k| k.key.as_str())),
            column(writes, |w| w.key.as_ref().map(|k| k.fingerprint.as_str())),
            column(writes, |w| w.key.as_ref().map(|k| k.holder)),
        ]);
        params.extend::<[Box<dyn ToSql + Sync + Send>; 3]>([
            Box::new(hold),
            Box::new(lease),
            Box::new(ttl),
        ]);
        params
    }
}

impl Write for Outcome {
    // `$18`–`$20`: the hold, the first backoff and the longest, in ms.
    // The order's status is compared with the row's, never with a
    // constant: the planner then keeps to the primary key (a constant
    // `'pending'` matches the due index's predicate, and every pending
    // order's entry was scanned).
    const SQL: &'static str = concat!(
        "WITH ",
        input!(
            "$11::text[]",
            "$12::bool[]",
            "$13::text[]",
            "$14::uuid[]",
            "$15::int2[]",
            "$16::jsonb[]",
            "$17::bytea[]"
        ),
        ", from_status, claiming, key, holder, response_status, response_headers,
                response_body)),
         settled AS (
             UPDATE orders o SET status = i.status, transaction_id = i.transaction_id,
                 reason = i.reason, maybe_charged = i.maybe_charged,
                 calls = GREATEST(o.calls, i.calls),
                 due_at = CASE WHEN i.status = 'pending' THEN now() + GREATEST($18,
                     LEAST($19 * power(2, LEAST(o.attempts, 16)), $20))
                     * interval '1 millisecond' END
             FROM input i
             WHERE o.order_id = i.order_id AND o.status = i.from_status
               AND NOT (i.status = 'failed' AND i.calls < o.calls)
               AND (NOT i.claiming OR o.calls = i.calls - 1)
             RETURNING o.order_id),
         completed AS (
             UPDATE idempotency_keys k SET holder = NULL, lease_until = NULL,
                 response_status = i.response_status, response_headers = i.response_headers,
                 response_body = i.response_body
             FROM input i JOIN settled s ON s.order_id = i.order_id
             WHERE k.key = i.key AND k.holder = i.holder
             RETURNING k.key)
         SELECT order_id FROM settled"
    );

    fn entries(queue: &mut Queue) -> &mut VecDeque<Entry<Self>> {
        &mut queue.outcomes
    }

    fn order_id(&self) -> Uuid {
        self.order.order_id.as_uuid()
    }

    fn params<'a>(store: &PgStore, writes: &[&'a Self]) -> Params<'a> {
        let [hold, interval, max] = store.due_params();
        let mut params = order_columns(writes, |w| &w.order);
        let key = |w: &'a Self| w.key.as_ref();
        params.extend([
            column(writes, |w| w.from.as_str()),
            column(writes, |w| w.claiming),
            column(writes, move |w| key(w).map(|k| k.key.as_str())),
            column(writes, move |w| key(w).map(|k| k.holder)),
            column(writes, move |w| key(w).map(|k| k.status)),
            column(writes, move |w| key(w).map(|k| &k.headers)),
            column(writes, move |w| key(w).map(|k| k.body.as_slice())),
        ]);
        params.extend::<[Box<dyn ToSql + Sync + Send>; 3]>([
            Box::new(hold),
            Box::new(interval),
            Box::new(max),
        ]);
        params
    }
}
