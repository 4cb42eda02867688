//! The one settle path (`charge_and_settle`), for a request's flow and
//! the reconciler's re-drive alike: the call (admitted, or refused before
//! it leaves), payment's answer or the timeout, the order's status from
//! what the call learned (`settle`), and its compare-and-set write —
//! which, under a key whose answer is final, ends the key in the same
//! statement. A write that fails leaves the order as it stood; then an
//! answer of "nothing charged" needs the payment key voided first
//! (`unsettled`, `fence`). An unkeyed order whose first write may land
//! late and whose void failed is settled after the answer
//! (`settle_unrecorded`).

use crate::config::{Fault, Guard, Guards};
use crate::outcome::{How, answer, conclude, end, key_keeps, settled_reply, spend};
use crate::state::{CallResult, Flow, Ix, Op, PayReply, Pc, Reply, Seen, State, Status, Stmt};
use crate::store::{self, Updated};

pub fn step(st: &mut State, g: Guards, slot: Ix, flow: Flow, how: How) {
    match flow.pc {
        Pc::Call if how == How::Refused => {
            st.budget.spend(Fault::Refusal);
            st.flow_mut(slot).pc = Pc::Settle(CallResult::Failed { reached: false });
        }
        Pc::Call => {
            st.send(Op::Charge, flow.order, slot);
            st.flow_mut(slot).pc = Pc::Await;
        }
        Pc::Unrecorded => {
            st.send(Op::Void, flow.order, slot);
            st.flow_mut(slot).pc = Pc::UnrecordedAwait;
        }
        Pc::Await | Pc::AwaitVoid { .. } | Pc::UnrecordedAwait => heard(st, g, slot, flow, how),
        Pc::Settle(result) => settle_and_write(st, g, slot, flow, result, how),
        Pc::UnrecordedWrite(to) => {
            let stmt = Stmt::Final {
                order: flow.order,
                to,
            };
            match spend(st, how, stmt) {
                Ok(()) => {
                    store::write_final(st, g, flow.order, to);
                    end(st, slot);
                }
                Err(_) => st.flow_mut(slot).pc = Pc::Unrecorded,
            }
        }
        Pc::Redrive => redrive(st, slot, flow, how),
        _ => unreachable!("flow::step runs the others"),
    }
}

/// payment's answer read, or the wait given up on (the request may still
/// arrive and act).
fn heard(st: &mut State, g: Guards, slot: Ix, flow: Flow, how: How) {
    let reply = match how {
        How::TimedOut => {
            st.budget.spend(Fault::Timeout);
            st.forget(slot);
            None
        }
        _ => flow.inbox,
    };
    st.flow_mut(slot).inbox = None;
    match flow.pc {
        Pc::Await => {
            let result = match reply {
                None => CallResult::TimedOut,
                Some(PayReply::Charged) => CallResult::Charged,
                Some(PayReply::Declined) => CallResult::Declined,
                Some(PayReply::Voided) => CallResult::Voided,
                Some(PayReply::Failed) => CallResult::Failed { reached: true },
                // Refused before the ledger: this attempt charged nothing.
                Some(PayReply::Rejected) if g.on(Guard::OnlyPaymentDeclines) => {
                    CallResult::Failed { reached: false }
                }
                Some(PayReply::Rejected) => CallResult::Declined,
            };
            st.flow_mut(slot).pc = Pc::Settle(result);
        }
        Pc::AwaitVoid {
            voided,
            otherwise,
            unrecorded,
        } => match reply {
            Some(PayReply::Voided) => answer(st, slot, voided),
            _ => {
                answer(st, slot, otherwise);
                if unrecorded {
                    st.flows[slot as usize] = Some(Flow {
                        pc: Pc::Unrecorded,
                        client: None,
                        inbox: None,
                        ..flow
                    });
                }
            }
        },
        _ => {
            st.flow_mut(slot).pc = match reply {
                Some(PayReply::Voided) => Pc::UnrecordedWrite(Status::Failed),
                Some(PayReply::Charged) => Pc::UnrecordedWrite(Status::Completed),
                _ => Pc::Unrecorded,
            };
        }
    }
}

/// `settle`: the order's status after a call. Absent only when payment
/// said so, or no attempt (now or before) may have reached it.
pub fn settle(seen: Seen, result: CallResult) -> (Status, bool) {
    let maybe = seen.maybe_charged || result.outcome_unknown();
    let status = match result {
        CallResult::Charged => Status::Completed,
        CallResult::Declined | CallResult::Voided => Status::Failed,
        _ if maybe => Status::Pending,
        _ => Status::Failed,
    };
    (status, maybe)
}

fn settle_and_write(st: &mut State, g: Guards, slot: Ix, flow: Flow, result: CallResult, how: How) {
    let (status, maybe_charged) = settle(flow.seen, result);
    let reply = settled_reply(flow.order, status, result);
    let keeps = flow.holds && key_keeps(reply, result == CallResult::Declined);
    let stmt = Stmt::Write {
        order: flow.order,
        to: status,
        seen: Seen {
            maybe_charged,
            calls: flow.seen.calls,
        },
        claiming: false,
        complete: keeps.then(|| (flow.key.expect("a held key"), slot, reply)),
    };
    let written = match spend(st, how, stmt) {
        Ok(()) => store::write(st, g, stmt),
        Err(_) => Updated::Missing,
    };
    if flow.redrive {
        return end(st, slot);
    }
    match written {
        Updated::Written => {
            st.flow_mut(slot).holds &= !keeps;
            conclude(st, slot, status, result);
        }
        Updated::Stale(row) => conclude(st, slot, row.status, result),
        Updated::Missing => unsettled(st, g, slot, flow, status, result),
    }
}

/// `unsettled`: the outcome was not written; the order stands pending and
/// possibly charged. "Nothing charged" only once its payment key is void.
fn unsettled(st: &mut State, g: Guards, slot: Ix, flow: Flow, status: Status, result: CallResult) {
    let order = flow.order;
    let unknown = Reply::Unknown(Some(order));
    if status != Status::Failed {
        return answer(st, slot, unknown);
    }
    let nothing = settled_reply(order, status, result);
    if !g.on(Guard::AnswerRule) {
        return answer(st, slot, nothing);
    }
    st.send(Op::Void, order, slot);
    st.flow_mut(slot).pc = Pc::AwaitVoid {
        voided: nothing,
        otherwise: unknown,
        unrecorded: false,
    };
}

/// The reconciler's re-drive of a claimed row: read; still pending, it is
/// claimed into a call of its own.
fn redrive(st: &mut State, slot: Ix, flow: Flow, how: How) {
    if how == How::DbError {
        st.budget.spend(Fault::DbError);
        return end(st, slot);
    }
    match st.row(flow.order) {
        Some(row) if row.status == Status::Pending => {
            st.flow_mut(slot).pc = Pc::RedriveClaim(Seen {
                maybe_charged: row.maybe_charged,
                calls: row.calls,
            });
        }
        _ => end(st, slot),
    }
}
