//! PostgreSQL: each statement the code sends, as one atomic step on the
//! rows, with the rules of its SQL (`store/postgres/*.rs`). A statement
//! commits whole or not at all; whether its caller hears back is the
//! flow's business, and a statement given up on waits in
//! [`State::late`] until it commits or is lost.

use crate::config::{Guard, Guards};
use crate::state::{Ix, KeyRow, Reply, Row, Seen, State, Status, Stmt, bit};

/// `reserve_key`'s answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reservation {
    New,
    Resume(Ix),
    Replay(Reply),
    InFlight(Ix),
}

/// `write_outcome`'s answer: written, or the order as it stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Updated {
    Written,
    Stale(Row),
    Missing,
}

/// A new order as its first write stores it: `pending`, one call, and
/// possibly charged (`possibly_charged`) unless that guard is off.
fn first_row(g: Guards) -> Row {
    Row {
        status: Status::Pending,
        maybe_charged: g.on(Guard::PossiblyChargedFirst),
        calls: 1,
    }
}

/// `reserve_key`: the key and its pending order in one statement; else a
/// takeover of a free key; else the key as it stands.
pub fn reserve(st: &mut State, g: Guards, key: Ix, holder: Ix, order: Ix) -> Reservation {
    let Some(row) = st.keys[key as usize].as_mut() else {
        st.keys[key as usize] = Some(KeyRow {
            order,
            holder: Some(holder),
            lease_live: true,
            response: None,
        });
        st.orders[order as usize] = Some(first_row(g));
        return Reservation::New;
    };
    if row.response.is_none() && (row.holder.is_none() || !row.lease_live) {
        row.holder = Some(holder);
        row.lease_live = true;
        return Reservation::Resume(row.order);
    }
    match row.response {
        Some(stored) => Reservation::Replay(stored),
        None => Reservation::InFlight(row.order),
    }
}

/// `insert_order`: `ON CONFLICT DO NOTHING`.
pub fn insert(st: &mut State, g: Guards, order: Ix) {
    let slot = &mut st.orders[order as usize];
    if slot.is_none() {
        *slot = Some(first_row(g));
    }
}

/// An `Outcome` write from `pending` (`write_outcome`, `complete_key`): the
/// compare-and-set on the status, the call counter, and, when `complete`
/// names a key, that key's end in the same statement.
pub fn write(st: &mut State, g: Guards, stmt: Stmt) -> Updated {
    let Stmt::Write {
        order,
        to,
        seen,
        claiming,
        complete,
    } = stmt
    else {
        unreachable!("write runs Stmt::Write");
    };
    let Some(row) = st.orders[order as usize].as_mut() else {
        return Updated::Missing;
    };
    let status_ok = !g.on(Guard::StatusCas) || row.status == Status::Pending;
    let counted = !g.on(Guard::CallCounter)
        || !((to == Status::Failed && seen.calls < row.calls)
            || (claiming && row.calls + 1 != seen.calls));
    if !(status_ok && counted) {
        return Updated::Stale(*row);
    }
    *row = Row {
        status: to,
        maybe_charged: seen.maybe_charged,
        calls: row.calls.max(seen.calls),
    };
    if to == Status::Completed {
        st.ghost.ever_completed |= bit(order);
    }
    if let Some((key, holder, stored)) = complete {
        complete_key(st, g, key, holder, stored);
    }
    Updated::Written
}

/// `complete_key`'s key part: only its holder ends it.
pub fn complete_key(st: &mut State, g: Guards, key: Ix, holder: Ix, stored: Reply) {
    if let Some(row) = st.keys[key as usize].as_mut()
        && (!g.on(Guard::HolderCheck) || row.holder == Some(holder))
    {
        row.holder = None;
        row.lease_live = false;
        row.response = Some(stored);
    }
}

/// `release_key`: only its holder frees it, and never a completed one.
pub fn release(st: &mut State, g: Guards, key: Ix, holder: Ix) {
    if let Some(row) = st.keys[key as usize].as_mut()
        && (!g.on(Guard::HolderCheck) || row.holder == Some(holder))
        && row.response.is_none()
    {
        row.holder = None;
        row.lease_live = false;
    }
}

/// `settle_unrecorded`'s write: the final order inserted, or (its first
/// write landed late) moved from `pending`.
pub fn write_final(st: &mut State, g: Guards, order: Ix, to: Status) {
    if st.orders[order as usize].is_none() {
        st.orders[order as usize] = Some(Row {
            status: to,
            maybe_charged: true,
            calls: 1,
        });
        if to == Status::Completed {
            st.ghost.ever_completed |= bit(order);
        }
        return;
    }
    let seen = Seen {
        maybe_charged: true,
        calls: 1,
    };
    let stmt = Stmt::Write {
        order,
        to,
        seen,
        claiming: false,
        complete: None,
    };
    write(st, g, stmt);
}

/// A key the sweep (`sweep_keys`) may delete once its TTL has passed,
/// which in the model may be any time: the TTL is not modelled, only
/// the rules that hold whenever it ends.
pub fn sweepable(st: &State, g: Guards, key: &KeyRow) -> bool {
    let pending = st
        .row(key.order)
        .is_some_and(|row| row.status == Status::Pending);
    (key.holder.is_none() || !key.lease_live) && !(g.on(Guard::SweepKeepsPending) && pending)
}

/// A statement given up on, committing now.
pub fn apply(st: &mut State, g: Guards, stmt: Stmt) {
    match stmt {
        Stmt::Reserve { key, holder, order } => {
            let _ = reserve(st, g, key, holder, order);
        }
        Stmt::Insert { order } => insert(st, g, order),
        Stmt::Write { .. } => {
            let _ = write(st, g, stmt);
        }
        Stmt::Complete {
            key,
            holder,
            stored,
        } => complete_key(st, g, key, holder, stored),
        Stmt::Release { key, holder } => release(st, g, key, holder),
        Stmt::Final { order, to } => write_final(st, g, order, to),
    }
}
