//! A request's flow on a replica (`orders.rs`, `orders/resume.rs`): the
//! key's reservation with its order, or the unkeyed insert; a resumed
//! key's read and claim; the key's end; the answer. Each step is one
//! statement (or read) and what the flow does with its outcome, which the
//! environment picks: done, failed having written nothing, or given up
//! while it may still commit. The payment call and the settling are in
//! [`crate::call`], shared with the reconciler's re-drive.

use crate::call;
use crate::config::{Fault, Guard, Guards};
use crate::outcome::{How, answer, end, spend};
use crate::state::{Flow, Ix, Op, Pc, Reply, Seen, State, Status, Stmt};
use crate::store::{self, Reservation, Updated};

/// The outcomes the flow in `slot` may meet next.
pub fn hows(st: &State, slot: Ix) -> Vec<How> {
    let Some(flow) = st.flow(slot) else {
        return Vec::new();
    };
    let b = st.budget;
    let mut hows = Vec::new();
    let mut statement = |write: bool| {
        hows.push(How::Ok);
        if b.left(Fault::DbError) {
            hows.push(How::DbError);
        }
        if write && b.left(Fault::LateCommit) {
            hows.push(How::DbLate);
        }
    };
    match flow.pc {
        Pc::ResumeGet | Pc::Redrive => statement(false),
        Pc::Call | Pc::Unrecorded => {
            hows.push(How::Sent);
            if b.left(Fault::Refusal) && flow.pc == Pc::Call {
                hows.push(How::Refused);
            }
        }
        Pc::Await | Pc::AwaitVoid { .. } | Pc::UnrecordedAwait => {
            if flow.inbox.is_some() {
                hows.push(How::Reply);
            }
            if b.left(Fault::Timeout) {
                hows.push(How::TimedOut);
            }
        }
        _ => statement(true),
    }
    hows
}

/// Runs one step of the flow in `slot`.
pub fn step(st: &mut State, g: Guards, slot: Ix, how: How) {
    let flow = *st.flow(slot).expect("a step of a flow that exists");
    match flow.pc {
        Pc::Reserve => reserve(st, g, slot, flow, how),
        Pc::Insert => insert(st, g, slot, flow, how),
        Pc::ResumeGet => resume_get(st, slot, flow, how),
        Pc::ResumeClaim(read) | Pc::RedriveClaim(read) => claim(st, g, slot, flow, read, how),
        Pc::FinishKey(reply) => finish_key(st, g, slot, flow, reply, how),
        Pc::Release => release(st, g, slot, flow, how),
        _ => call::step(st, g, slot, flow, how),
    }
}

fn reserve(st: &mut State, g: Guards, slot: Ix, flow: Flow, how: How) {
    let key = flow.key.expect("a keyed flow");
    let stmt = Stmt::Reserve {
        key,
        holder: slot,
        order: flow.order,
    };
    // `unreserved`: the key may name a charged order.
    if spend(st, how, stmt).is_err() {
        return answer(st, slot, Reply::Unknown(None));
    }
    match store::reserve(st, g, key, slot, flow.order) {
        Reservation::New => {
            let f = st.flow_mut(slot);
            f.holds = true;
            f.seen = Seen {
                maybe_charged: false,
                calls: 1,
            };
            f.pc = Pc::Call;
        }
        Reservation::Resume(order) => {
            let f = st.flow_mut(slot);
            (f.holds, f.order, f.pc) = (true, order, Pc::ResumeGet);
        }
        Reservation::Replay(stored) => answer(st, slot, stored),
        Reservation::InFlight(order) => answer(st, slot, Reply::Unknown(Some(order))),
    }
}

/// `place` without a key: the order written `pending`; a write that may
/// commit late is fenced (`unrecorded`).
fn insert(st: &mut State, g: Guards, slot: Ix, flow: Flow, how: How) {
    let order = flow.order;
    match spend(st, how, Stmt::Insert { order }) {
        Ok(()) => {
            store::insert(st, g, order);
            let f = st.flow_mut(slot);
            f.seen = Seen {
                maybe_charged: false,
                calls: 1,
            };
            f.pc = Pc::Call;
        }
        Err(false) => answer(st, slot, Reply::Nothing(None)),
        Err(true) if !g.on(Guard::AnswerRule) => answer(st, slot, Reply::Nothing(None)),
        Err(true) => {
            st.send(Op::Void, order, slot);
            st.flow_mut(slot).pc = Pc::AwaitVoid {
                voided: Reply::Nothing(Some(order)),
                otherwise: Reply::Unknown(Some(order)),
                unrecorded: true,
            };
        }
    }
}

/// `resume`: the key's order, read. (With the keys beside the orders, a
/// key always has its order; the in-memory store's re-insert of a
/// forgotten order is not modelled.)
fn resume_get(st: &mut State, slot: Ix, flow: Flow, how: How) {
    let order = flow.order;
    let row = match (how, st.row(order)) {
        (How::DbError, _) => {
            st.budget.spend(Fault::DbError);
            None
        }
        (_, row) => row,
    };
    match row.map(|row| (row.status, row)) {
        None => answer(st, slot, Reply::Unknown(Some(order))),
        Some((Status::Pending, row)) => {
            st.flow_mut(slot).pc = Pc::ResumeClaim(Seen {
                maybe_charged: row.maybe_charged,
                calls: row.calls,
            });
        }
        Some((_, row)) => as_it_stands(st, slot, order, row.status),
    }
}

/// The key's order stands final: the key is completed with its answer
/// (`finish_key` with `Settle::AsItStands`).
fn as_it_stands(st: &mut State, slot: Ix, order: Ix, status: Status) {
    let reply = match status {
        Status::Completed => Reply::Created(order),
        Status::Failed => Reply::Nothing(Some(order)),
        Status::Pending => return answer(st, slot, Reply::Unknown(Some(order))),
    };
    st.flow_mut(slot).pc = Pc::FinishKey(reply);
}

/// `claim`: a compare-and-set on the status and the count read; the
/// claimer then holds the next count.
fn claim(st: &mut State, g: Guards, slot: Ix, flow: Flow, read: Seen, how: How) {
    let (order, redrive) = (flow.order, flow.redrive);
    let stmt = Stmt::Write {
        order,
        to: Status::Pending,
        seen: Seen {
            maybe_charged: true,
            calls: read.calls + 1,
        },
        claiming: true,
        complete: None,
    };
    let updated = match spend(st, how, stmt) {
        Ok(()) => store::write(st, g, stmt),
        Err(_) if redrive => return end(st, slot),
        Err(_) => return answer(st, slot, Reply::Unknown(Some(order))),
    };
    match updated {
        Updated::Written => {
            let f = st.flow_mut(slot);
            f.seen = Seen {
                maybe_charged: read.maybe_charged,
                calls: read.calls + 1,
            };
            f.pc = Pc::Call;
        }
        _ if redrive => end(st, slot),
        Updated::Stale(row) => as_it_stands(st, slot, order, row.status),
        Updated::Missing => answer(st, slot, Reply::Unknown(Some(order))),
    }
}

/// `finish_key`: the key ends with the answer it will replay; one that
/// fails to end is released when its lease drops.
fn finish_key(st: &mut State, g: Guards, slot: Ix, flow: Flow, reply: Reply, how: How) {
    let key = flow.key.expect("a keyed flow");
    let stmt = Stmt::Complete {
        key,
        holder: slot,
        stored: reply,
    };
    if spend(st, how, stmt).is_ok() {
        store::complete_key(st, g, key, slot, reply);
        st.flow_mut(slot).holds = false;
    }
    answer(st, slot, reply);
}

/// The lease's release, sent after the answer.
fn release(st: &mut State, g: Guards, slot: Ix, flow: Flow, how: How) {
    let key = flow.key.expect("a keyed flow");
    if spend(st, how, Stmt::Release { key, holder: slot }).is_ok() {
        store::release(st, g, key, slot);
    }
    end(st, slot);
}
