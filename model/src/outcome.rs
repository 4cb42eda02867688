//! What every flow does with an outcome: spend the fault the environment
//! chose, answer its client, end; and the answer itself, once the order
//! stands (`answer`, `OrderError::charge`), with what its key keeps of it
//! (`key_ending`).

use crate::client;
use crate::config::Fault;
use crate::state::{CallResult, Ix, Pc, Reply, State, Status, Stmt};

/// The outcome of a flow's step that the environment chooses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum How {
    Ok,
    /// The statement failed, having written nothing.
    DbError,
    /// Given up on (timeout, broken connection): it may still commit.
    DbLate,
    /// Refused before it left: breaker, bulkhead, connection refused.
    Refused,
    Sent,
    Reply,
    TimedOut,
}

/// Spends the fault `how` on `stmt`: `Ok` to run it now, else whether it
/// may have been written (it then waits in `late`).
pub fn spend(st: &mut State, how: How, stmt: Stmt) -> Result<(), bool> {
    match how {
        How::DbError => {
            st.budget.spend(Fault::DbError);
            Err(false)
        }
        How::DbLate => {
            st.budget.spend(Fault::LateCommit);
            st.late.push(stmt);
            st.late.sort();
            Err(true)
        }
        _ => Ok(()),
    }
}

/// Tells the flow's client `reply` (if it still waits); then the flow
/// releases its key, or ends.
pub fn answer(st: &mut State, slot: Ix, reply: Reply) {
    let flow = st.flow_mut(slot);
    let (client, key) = (flow.client.take(), flow.key);
    if let Some(client) = client {
        client::tell(st, client, key, slot, reply);
    }
    if st.flow_mut(slot).holds {
        st.flow_mut(slot).pc = Pc::Release;
    } else {
        end(st, slot);
    }
}

/// The flow is gone: a later answer for it finds nobody.
pub fn end(st: &mut State, slot: Ix) {
    st.flows[slot as usize] = None;
    st.forget(slot);
}

/// `answer` and `OrderError::charge`: what a client is told once the
/// order stands `status` after a call that ended `result`.
pub fn settled_reply(order: Ix, status: Status, result: CallResult) -> Reply {
    match (status, result) {
        (Status::Completed, _) => Reply::Created(order),
        (Status::Failed, CallResult::Declined) => Reply::Declined(order),
        (Status::Failed, _) => Reply::Nothing(Some(order)),
        (Status::Pending, _) => Reply::Unknown(Some(order)),
    }
}

/// Whether the key keeps `reply` as its final answer (`key_ending`): a
/// 201, the "none" of a failed order, or whatever follows a decline.
pub fn key_keeps(reply: Reply, declined: bool) -> bool {
    declined || matches!(reply, Reply::Created(_) | Reply::Nothing(Some(_)))
}

/// The flow's answer after its write (`answer`), and its key's end.
pub fn conclude(st: &mut State, slot: Ix, status: Status, result: CallResult) {
    let flow = *st.flow(slot).expect("a flow");
    let reply = settled_reply(flow.order, status, result);
    let declined = result == CallResult::Declined;
    if flow.holds && key_keeps(reply, declined) {
        st.flow_mut(slot).pc = Pc::FinishKey(reply);
    } else {
        answer(st, slot, reply);
    }
}
