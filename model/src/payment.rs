//! payment-service: one end per payment key (the order id), decided under
//! the ledger's lock — a charge, or a void (`ledger.rs`, `POST /charge`,
//! `POST /charges/{key}/void`). A charge of a key already charged replays
//! it; of a voided key, is refused; a purchase over the limit is declined
//! before anything is recorded. Injected 500s strike before the charge or
//! after it, and the caller cannot tell which; a 4xx (credentials, a
//! request it would not read) comes before the ledger is looked at.

use crate::state::{Msg, Op, Pay, PayReply, State};

/// Which injected fault a charge request meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayFault {
    None,
    /// `error_before_charge`: 500, nothing charged.
    BeforeCharge,
    /// `fail_after_charge`: charged, then 500.
    AfterCharge,
    /// A 4xx before the ledger is looked at (401, 408, ...).
    Rejected,
}

/// payment-service handles the request `msg` (taken off the network):
/// the ledger moves, and the caller still waiting reads the answer.
pub fn deliver(st: &mut State, msg: Msg, fault: PayFault, declined: bool) {
    let order = msg.order as usize;
    let reply = match (msg.op, st.ledger[order]) {
        (Op::Charge, _) if fault == PayFault::Rejected => PayReply::Rejected,
        (Op::Charge, Pay::Voided) => PayReply::Voided,
        (Op::Charge, Pay::Nothing) if declined => PayReply::Declined,
        (Op::Charge, Pay::Nothing) if fault == PayFault::BeforeCharge => PayReply::Failed,
        (Op::Charge, ledger) => {
            if ledger == Pay::Nothing {
                st.ledger[order] = Pay::Charged;
                st.ghost.charges[order] += 1;
            }
            // `respond`: the 500 after the charge strikes a replay too.
            match fault {
                PayFault::AfterCharge => PayReply::Failed,
                _ => PayReply::Charged,
            }
        }
        (Op::Void, Pay::Nothing) => {
            st.ledger[order] = Pay::Voided;
            PayReply::Voided
        }
        (Op::Void, Pay::Voided) => PayReply::Voided,
        (Op::Void, Pay::Charged) => PayReply::Charged,
    };
    if let Some(slot) = msg.reply
        && let Some(flow) = st.flows[slot as usize].as_mut()
    {
        flow.inbox = Some(reply);
    }
}
