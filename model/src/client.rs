//! Clients do what the answers say (`docs/api.md`): a 201 or a decline
//! ends the purchase; `charge: "none"` lets it start again (under a new
//! key: the old one is spent or names nothing); `"unknown"` under a key
//! is retried with the same key, and without one the order it names is
//! read until it ends — only a `failed` one is bought anew. A connection
//! that broke is "unknown" with no order to read: a keyed client retries
//! its key, an unkeyed one can only give up.

use crate::state::{Client, Ix, Reply, State, Status, bit};

/// The client hears `reply` for the request that carried `key` and
/// started the candidate order `candidate`.
pub fn tell(st: &mut State, client: Ix, key: Option<Ix>, candidate: Ix, reply: Reply) {
    let ghost = &mut st.ghost;
    let next = match reply {
        Reply::Created(order) => {
            ghost.answered_created |= bit(order);
            Client::Done
        }
        Reply::Declined(order) | Reply::Nothing(Some(order)) => {
            ghost.answered_nothing |= bit(order);
            nothing_under(st, key);
            match reply {
                Reply::Declined(_) => Client::Done,
                _ => anew(st, client, key),
            }
        }
        Reply::Nothing(None) => {
            ghost.answered_nothing |= bit(candidate);
            nothing_under(st, key);
            anew(st, client, key)
        }
        Reply::Unknown(order) => match (key, order) {
            (Some(_), _) => Client::Idle { key },
            (None, Some(order)) => Client::Reading(order),
            (None, None) => Client::Done,
        },
        Reply::Lost => match key {
            Some(_) => Client::Idle { key },
            None => Client::Done,
        },
    };
    st.clients[client as usize] = next;
}

fn nothing_under(st: &mut State, key: Option<Ix>) {
    if let Some(key) = key {
        st.ghost.keys_answered_nothing |= bit(key);
    }
}

/// Bought anew: under a new key, the purchase's next one (a client of
/// it may have taken it already).
fn anew(st: &mut State, client: Ix, key: Option<Ix>) -> Client {
    let purchase = st.purchase_of[client as usize] as usize;
    if key.is_some() && st.purchase_key[purchase] == key {
        st.purchase_key[purchase] = Some(st.next_key);
        st.next_key += 1;
    }
    Client::Idle {
        key: st.purchase_key[purchase],
    }
}

/// `GET /orders/{id}` of the order a client was told "unknown" about:
/// enabled once it has ended.
pub fn read(st: &mut State, client: Ix) -> bool {
    let Client::Reading(order) = st.clients[client as usize] else {
        return false;
    };
    st.clients[client as usize] = match st.row(order).map(|row| row.status) {
        Some(Status::Completed) => Client::Done,
        Some(Status::Failed) => Client::Idle { key: None },
        _ => return false,
    };
    true
}
