//! A path the checker found, told as a story: each step by whom, what it
//! ran (named as in the code) and how it went, then what changed in the
//! database, at payment and for the clients.

use stateright::Model;

use crate::model::{Action, Protocol};
use crate::outcome::How;
use crate::payment::PayFault;
use crate::state::{Client, Pc, State};

/// One line per step of `path` (states with the action taken from each).
pub fn tell(protocol: &Protocol, path: &[(State, Option<Action>)]) -> String {
    let mut out = String::new();
    for (i, (before, action)) in path.iter().enumerate() {
        let Some(action) = action else { continue };
        let after = protocol
            .next_state(before, *action)
            .unwrap_or_else(|| before.clone());
        out.push_str(&format!("{:>3}. {}", i + 1, step(before, action)));
        for change in changes(before, &after) {
            out.push_str(&format!("\n       → {change}"));
        }
        out.push('\n');
    }
    out
}

fn step(st: &State, action: &Action) -> String {
    match *action {
        Action::Step { slot, how } => {
            let Some(flow) = st.flow(slot) else {
                return format!("{action:?}");
            };
            let who = if flow.redrive {
                format!("replica {} reconciler", flow.replica)
            } else {
                let key = flow.key.map(|k| format!(", key k{k}")).unwrap_or_default();
                format!("replica {} request {slot}{key}", flow.replica)
            };
            format!(
                "{who}: {} (order o{}) — {}",
                ran(flow.pc),
                flow.order,
                how_went(how)
            )
        }
        Action::Deliver { msg, fault } => {
            let msg = st.net[msg as usize];
            let fault = match fault {
                PayFault::None => "",
                PayFault::BeforeCharge => ", injected 500 before the charge",
                PayFault::AfterCharge => ", injected 500 after the charge",
                PayFault::Rejected => ", answered 4xx before its ledger (401, 408)",
            };
            format!("payment handles {:?} of o{}{fault}", msg.op, msg.order)
        }
        Action::Send { client, replica } => {
            format!("client {client} sends POST /orders to replica {replica}")
        }
        other => format!("{other:?}"),
    }
}

fn ran(pc: Pc) -> String {
    match pc {
        Pc::Reserve => "reserve_key".into(),
        Pc::Insert => "insert_order".into(),
        Pc::ResumeGet => "resume: get".into(),
        Pc::ResumeClaim(_) => "resume: claim".into(),
        Pc::Call => "payment call".into(),
        Pc::Await => "waits for payment".into(),
        Pc::Settle(result) => format!("settle after {result:?}: write the outcome"),
        Pc::AwaitVoid { .. } | Pc::UnrecordedAwait => "waits for the void".into(),
        Pc::FinishKey(reply) => format!("complete_key with {reply:?}"),
        Pc::Release => "release_key".into(),
        Pc::Unrecorded => "settle_unrecorded: void".into(),
        Pc::UnrecordedWrite(to) => format!("settle_unrecorded: write {to:?}"),
        Pc::Redrive => "re-drive: get".into(),
        Pc::RedriveClaim(_) => "re-drive: claim".into(),
    }
}

fn how_went(how: How) -> &'static str {
    match how {
        How::Ok => "done",
        How::DbError => "fails, nothing written",
        How::DbLate => "given up on; it may still commit",
        How::Refused => "refused before it left (breaker, bulkhead)",
        How::Sent => "sent",
        How::Reply => "answer read",
        How::TimedOut => "timed out",
    }
}

fn changes(before: &State, after: &State) -> Vec<String> {
    let mut changes = Vec::new();
    for (o, (a, b)) in before.orders.iter().zip(&after.orders).enumerate() {
        if a.map(|r| (r.status, r.calls)) != b.map(|r| (r.status, r.calls)) {
            let show = |r: &Option<crate::state::Row>| {
                r.map(|r| format!("{:?} (calls {})", r.status, r.calls))
                    .unwrap_or_else(|| "absent".into())
            };
            changes.push(format!("order o{o}: {} ⇒ {}", show(a), show(b)));
        }
    }
    for (o, (a, b)) in before.ledger.iter().zip(&after.ledger).enumerate() {
        if a != b {
            changes.push(format!("payment ledger o{o}: {b:?}"));
        }
    }
    for (k, (a, b)) in before.keys.iter().zip(&after.keys).enumerate() {
        if a != b {
            changes.push(format!("key k{k}: {b:?}"));
        }
    }
    for (c, (a, b)) in before.clients.iter().zip(&after.clients).enumerate() {
        if a != b {
            changes.push(format!("client {c}: {}", heard(before, after, *a, *b)));
        }
    }
    changes
}

/// What a client was told, from what it does next.
fn heard(before: &State, after: &State, was: Client, now: Client) -> String {
    let new = |f: fn(&State) -> u32| {
        let bits = f(after) & !f(before);
        (0..32).find(|o| bits & (1 << o) != 0)
    };
    let created = new(|st| st.ghost.answered_created);
    let nothing = new(|st| st.ghost.answered_nothing);
    let then = match now {
        Client::Idle { key: Some(k) } => format!("sends again under key k{k}"),
        Client::Idle { key: None } => "buys anew".into(),
        Client::Reading(o) => format!("reads o{o} until it ends"),
        Client::Done => "done".into(),
        Client::Waiting(_) => return "sends".into(),
    };
    match (was, created, nothing) {
        (_, Some(o), _) => format!("told 201 Created (o{o}); {then}"),
        (_, _, Some(o)) => format!("told charge \"none\" (o{o}); {then}"),
        (Client::Waiting(_), _, _) if matches!(now, Client::Reading(_)) => {
            format!("told charge \"unknown\"; {then}")
        }
        (Client::Waiting(_), _, _) => format!("told charge \"unknown\", or no answer; {then}"),
        _ => then,
    }
}
