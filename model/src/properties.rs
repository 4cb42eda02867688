//! What must hold: the contract's money promises, read off the state and
//! the ghost record of what each client was told. `always` properties
//! are checked in every state reached; `eventually` ones on every path
//! that ends (no step left: every fault spent, every request answered).

use stateright::{Model, Property};

use crate::state::{Pay, State, Status, bit};

/// Over any model of this state (the protocol's).
pub fn all<M: Model<State = State>>() -> Vec<Property<M>> {
    vec![
        Property::always("one charge per purchase", |_, st: &State| {
            one_per_purchase(st)
        }),
        Property::always("one charge per order", |_, st: &State| {
            st.ghost.charges.iter().all(|&n| n <= 1)
        }),
        Property::always(
            "an order answered \"none\" is never charged",
            |_, st: &State| none_stays_true(st),
        ),
        Property::always("a failed order has no charge", |_, st: &State| {
            orders(st).all(|(o, status)| status != Status::Failed || !charged(st, o))
        }),
        Property::always("completed never changes", |_, st: &State| {
            every(st.ghost.ever_completed, st, Status::Completed)
        }),
        Property::always("every charge has its order", |_, st: &State| {
            (0..st.ledger.len()).all(|o| !charged(st, o as u8) || st.orders[o].is_some())
        }),
        Property::always("a 201 names a completed order", |_, st: &State| {
            every(st.ghost.answered_created, st, Status::Completed)
        }),
        Property::always("one request at a time holds a key", |_, st: &State| {
            one_holder(st)
        }),
        Property::eventually("every order ends completed or failed", |_, st: &State| {
            st.flows.iter().all(Option::is_none)
                && orders(st).all(|(_, status)| status != Status::Pending)
        }),
        Property::eventually("no key is held", |_, st: &State| {
            st.keys
                .iter()
                .flatten()
                .all(|k| k.holder.is_none() || !k.lease_live)
        }),
    ]
}

fn charged(st: &State, order: u8) -> bool {
    st.ledger[order as usize] == Pay::Charged
}

fn orders(st: &State) -> impl Iterator<Item = (u8, Status)> + '_ {
    st.orders
        .iter()
        .enumerate()
        .filter_map(|(o, row)| row.map(|row| (o as u8, row.status)))
}

/// Every order in the bit set `set` stands `status`.
fn every(set: u32, st: &State, status: Status) -> bool {
    (0..st.orders.len() as u8)
        .filter(|&o| set & bit(o) != 0)
        .all(|o| st.row(o).is_some_and(|row| row.status == status))
}

fn one_per_purchase(st: &State) -> bool {
    let mut per_purchase = [0u8; 32];
    for (o, &n) in st.ghost.charges.iter().enumerate() {
        per_purchase[st.ghost.purchase[o] as usize] += n;
    }
    per_purchase.iter().all(|&n| n <= 1)
}

/// An order answered "none" is never charged; nor, under a key answered
/// "none", any order of that key.
fn none_stays_true(st: &State) -> bool {
    let g = &st.ghost;
    (0..st.ledger.len() as u8).all(|o| {
        let under_none_key =
            g.key[o as usize].is_some_and(|k| g.keys_answered_nothing & bit(k) != 0);
        !charged(st, o) || (g.answered_nothing & bit(o) == 0 && !under_none_key)
    })
}

/// A key is held by one request at a time (the others are told 409),
/// unless its lease ran out while its holder was still alive.
fn one_holder(st: &State) -> bool {
    (0..st.keys.len() as u8).all(|k| {
        let holding = st.flows.iter().flatten();
        holding
            .filter(|f| f.holds && !f.lease_lost && f.key == Some(k))
            .count()
            <= 1
    })
}
