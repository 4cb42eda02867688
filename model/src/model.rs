//! The protocol as a stateright [`Model`]: from any state, every step any
//! actor can take next — a client's request, a flow's statement or call
//! with each outcome its environment allows, payment handling a request
//! with or without an injected fault, the reconciler's claim, time
//! passing (a due time, a lease, a TTL), the sweep, a crash, a late
//! commit — is an action, and the checker explores them all.

use stateright::{Model, Property};

use crate::client;
use crate::config::{Config, Fault};
use crate::flow;
use crate::outcome::{self, How};
use crate::payment::{self, PayFault};
use crate::properties;
use crate::state::{Client, Flow, Ghost, Ix, Op, Pay, Pc, Reply, Seen, State, Status};
use crate::store;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// A client sends its next request to a replica.
    Send {
        client: Ix,
        replica: Ix,
    },
    /// A flow (or re-drive) in `slot` takes its next step.
    Step {
        slot: Ix,
        how: How,
    },
    /// payment-service handles the `msg`-th request in flight.
    Deliver {
        msg: Ix,
        fault: PayFault,
    },
    /// A client told "unknown" reads its order.
    Read {
        client: Ix,
    },
    /// A client hangs up (a TCP reset): its flow goes on without it.
    HangUp {
        client: Ix,
    },
    /// A replica's reconciler claims a pending row (`claim_due`) whose
    /// `due_at` has passed: the hold, a backoff or an earlier claim's
    /// lease, which in the model may end at any time.
    Claim {
        replica: Ix,
        order: Ix,
    },
    /// A key's lease runs out while its holder is silent or slow.
    LeaseEnds {
        key: Ix,
    },
    /// `key` outlives its TTL and `sweep_keys` runs.
    Sweep {
        key: Ix,
    },
    /// A replica is killed and restarts with nothing in memory.
    Crash {
        replica: Ix,
    },
    /// A statement given up on commits now, or is lost.
    CommitLate {
        i: Ix,
    },
    LoseLate {
        i: Ix,
    },
}

/// The protocol under `config`.
pub struct Protocol {
    pub config: Config,
    clients: Vec<(Ix, bool)>,
    requests: usize,
}

impl Protocol {
    pub fn new(config: Config) -> Self {
        let (clients, requests) = (config.clients(), config.requests());
        Protocol {
            config,
            clients,
            requests,
        }
    }

    /// The request slot of replica `r`'s re-drive.
    fn redrive_slot(&self, replica: Ix) -> Ix {
        (self.requests + replica as usize) as Ix
    }

    fn initial(&self) -> State {
        let n = self.requests;
        let keyed = self.clients.iter().filter(|(_, k)| *k).count();
        // The clients of one keyed purchase share its first key.
        let purchase_key: Vec<Option<Ix>> = (0..self.config.purchases.len())
            .map(|p| {
                let first = self.clients.iter().position(|c| c.0 as usize == p);
                first.filter(|&c| self.clients[c].1).map(|c| c as Ix)
            })
            .collect();
        let clients = self
            .clients
            .iter()
            .map(|&(purchase, _)| Client::Idle {
                key: purchase_key[purchase as usize],
            })
            .collect();
        State {
            clients,
            sent: vec![0; self.clients.len()],
            purchase_of: self.clients.iter().map(|c| c.0).collect(),
            purchase_key,
            flows: vec![None; n + self.config.replicas as usize],
            orders: vec![None; n],
            keys: vec![None; self.clients.len() + keyed * n],
            ledger: vec![Pay::Nothing; n],
            net: Vec::new(),
            late: Vec::new(),
            budget: self.config.faults,
            next_request: 0,
            next_key: self.clients.len() as Ix,
            replicas_used: 0,
            ghost: Ghost {
                purchase: vec![0; n],
                key: vec![None; n],
                charges: vec![0; n],
                ..Ghost::default()
            },
        }
    }

    /// The replicas a step may use: those used before, and one unused
    /// one standing for all the others.
    fn replicas(&self, st: &State) -> std::ops::Range<Ix> {
        0..(st.replicas_used + 1).min(self.config.replicas)
    }

    fn use_replica(st: &mut State, replica: Ix) {
        st.replicas_used = st.replicas_used.max(replica + 1);
    }

    fn send(&self, st: &mut State, client: Ix, replica: Ix) {
        Self::use_replica(st, replica);
        let Client::Idle { key } = st.clients[client as usize] else {
            return;
        };
        let slot = st.next_request;
        st.next_request += 1;
        st.sent[client as usize] += 1;
        st.clients[client as usize] = Client::Waiting(slot);
        st.ghost.purchase[slot as usize] = self.clients[client as usize].0;
        st.ghost.key[slot as usize] = key;
        st.flows[slot as usize] = Some(Flow {
            replica,
            redrive: false,
            client: Some(client),
            key,
            order: slot,
            seen: Seen::default(),
            holds: false,
            lease_lost: false,
            pc: if key.is_some() {
                Pc::Reserve
            } else {
                Pc::Insert
            },
            inbox: None,
        });
    }

    fn declined(&self, st: &State, order: Ix) -> bool {
        let purchase = st.ghost.purchase[order as usize];
        self.config.purchases[purchase as usize].declined
    }

    fn crash(&self, st: &mut State, replica: Ix) {
        st.budget.spend(Fault::Crash);
        for slot in 0..st.flows.len() as Ix {
            let Some(flow) = st.flow(slot).copied() else {
                continue;
            };
            if flow.replica == replica {
                if let Some(client) = flow.client {
                    client::tell(st, client, flow.key, slot, Reply::Lost);
                }
                outcome::end(st, slot);
            }
        }
    }

    /// Whether a flow still works on `order` within its hold: a claim now
    /// means it outlived the hold. Every write of a pending order (the
    /// first, a claim, an outcome left pending) puts `due_at` a hold or
    /// more ahead, and the hold (the longest call) covers the call and
    /// the write after it. A resume meets an order due long ago, and a
    /// void follows a store failure: neither is covered.
    fn worked_on(&self, st: &State, order: Ix) -> bool {
        st.flows.iter().flatten().any(|f| {
            f.order == order
                && (f.redrive
                    || matches!(
                        f.pc,
                        Pc::Call | Pc::Await | Pc::Settle(_) | Pc::FinishKey(_) | Pc::Release
                    ))
        })
    }

    fn claim(&self, st: &mut State, replica: Ix, order: Ix) {
        if self.worked_on(st, order) {
            st.budget.spend(Fault::Stall);
        }
        Self::use_replica(st, replica);
        let slot = self.redrive_slot(replica);
        st.flows[slot as usize] = Some(Flow {
            replica,
            redrive: true,
            client: None,
            key: None,
            order,
            seen: Seen::default(),
            holds: false,
            lease_lost: false,
            pc: Pc::Redrive,
            inbox: None,
        });
    }
}

impl Model for Protocol {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![self.initial()]
    }

    fn actions(&self, st: &State, actions: &mut Vec<Action>) {
        self.client_actions(st, actions);
        for slot in 0..st.flows.len() as Ix {
            for how in flow::hows(st, slot) {
                actions.push(Action::Step { slot, how });
            }
        }
        self.payment_actions(st, actions);
        self.time_actions(st, actions);
        for (i, _) in st.late.iter().enumerate() {
            actions.push(Action::CommitLate { i: i as Ix });
            actions.push(Action::LoseLate { i: i as Ix });
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut st = last.clone();
        let g = self.config.guards;
        match action {
            Action::Send { client, replica } => self.send(&mut st, client, replica),
            Action::Step { slot, how } => flow::step(&mut st, g, slot, how),
            Action::Deliver { msg, fault } => {
                let msg = st.net.remove(msg as usize);
                if fault != PayFault::None {
                    st.budget.spend(Fault::PaymentError);
                }
                let declined = self.declined(&st, msg.order);
                payment::deliver(&mut st, msg, fault, declined);
            }
            Action::Read { client } => {
                client::read(&mut st, client);
            }
            Action::HangUp { client } => {
                let Client::Waiting(slot) = st.clients[client as usize] else {
                    unreachable!("only a waiting client hangs up");
                };
                st.budget.spend(Fault::HangUp);
                let key = st.flow_mut(slot).client.take().and(st.flow_mut(slot).key);
                client::tell(&mut st, client, key, slot, Reply::Lost);
            }
            Action::Claim { replica, order } => self.claim(&mut st, replica, order),
            Action::LeaseEnds { key } => {
                let holder = st.keys[key as usize].and_then(|row| row.holder);
                if let Some(h) = holder.filter(|&h| st.flow(h).is_some()) {
                    st.budget.spend(Fault::Stall);
                    st.flow_mut(h).lease_lost = true;
                }
                if let Some(row) = st.keys[key as usize].as_mut() {
                    row.lease_live = false;
                }
            }
            Action::Sweep { key } => st.keys[key as usize] = None,
            Action::Crash { replica } => self.crash(&mut st, replica),
            Action::CommitLate { i } => {
                let stmt = st.late.remove(i as usize);
                store::apply(&mut st, g, stmt);
            }
            Action::LoseLate { i } => drop(st.late.remove(i as usize)),
        }
        Some(st)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        properties::all()
    }
}

impl Protocol {
    fn client_actions(&self, st: &State, actions: &mut Vec<Action>) {
        for (c, client) in st.clients.iter().enumerate() {
            let c = c as Ix;
            match client {
                Client::Idle { .. } if st.sent[c as usize] < self.config.requests_per_client => {
                    for replica in self.replicas(st) {
                        actions.push(Action::Send { client: c, replica });
                    }
                }
                Client::Waiting(_) if st.budget.left(Fault::HangUp) => {
                    actions.push(Action::HangUp { client: c });
                }
                Client::Reading(order)
                    if st
                        .row(*order)
                        .is_some_and(|row| row.status != Status::Pending) =>
                {
                    actions.push(Action::Read { client: c });
                }
                _ => {}
            }
        }
    }

    /// Whether `key`'s TTL may have passed. Idempotency is promised for
    /// retries within the TTL of a key's last request: a key a client of
    /// its purchase may still send expires only if its order stays
    /// pending (the sweep must then keep it, or the retry would start a
    /// second order).
    fn may_expire(&self, st: &State, key: Ix, row: &crate::state::KeyRow) -> bool {
        let pending = st
            .row(row.order)
            .is_some_and(|r| r.status == Status::Pending);
        let retried = st.clients.iter().enumerate().any(|(c, client)| {
            let purchase_key = st.purchase_key[st.purchase_of[c] as usize];
            *client != Client::Done
                && st.sent[c] < self.config.requests_per_client
                && (*client == Client::Idle { key: Some(key) } || purchase_key == Some(key))
        });
        let in_flight = st.flows.iter().flatten().any(|f| f.key == Some(key));
        // A statement given up on commits within the server's
        // `statement_timeout`, long before any TTL ends.
        st.late.is_empty() && (pending || !(retried || in_flight))
    }

    fn payment_actions(&self, st: &State, actions: &mut Vec<Action>) {
        for (i, msg) in st.net.iter().enumerate() {
            // Two identical requests in flight are one choice.
            if i > 0 && st.net[i - 1] == *msg {
                continue;
            }
            let msg_ix = i as Ix;
            actions.push(Action::Deliver {
                msg: msg_ix,
                fault: PayFault::None,
            });
            if msg.op == Op::Charge
                && st.budget.left(Fault::PaymentError)
                && !self.declined(st, msg.order)
            {
                for fault in [
                    PayFault::BeforeCharge,
                    PayFault::AfterCharge,
                    PayFault::Rejected,
                ] {
                    actions.push(Action::Deliver { msg: msg_ix, fault });
                }
            }
        }
    }

    fn time_actions(&self, st: &State, actions: &mut Vec<Action>) {
        for (order, row) in st.orders.iter().enumerate() {
            if !row.is_some_and(|row| row.status == Status::Pending) {
                continue;
            }
            let order = order as Ix;
            if self.worked_on(st, order) && !st.budget.left(Fault::Stall) {
                continue;
            }
            for replica in self.replicas(st) {
                if st.flow(self.redrive_slot(replica)).is_none() {
                    actions.push(Action::Claim { replica, order });
                }
            }
        }
        let g = self.config.guards;
        for (key, row) in st.keys.iter().enumerate() {
            let Some(row) = row else { continue };
            let key = key as Ix;
            let holder_alive = row.holder.is_some_and(|h| st.flow(h).is_some());
            if row.holder.is_some()
                && row.lease_live
                && (!holder_alive || st.budget.left(Fault::Stall))
            {
                actions.push(Action::LeaseEnds { key });
            }
            if store::sweepable(st, g, row) && self.may_expire(st, key, row) {
                actions.push(Action::Sweep { key });
            }
        }
        if st.budget.left(Fault::Crash) {
            for replica in 0..self.config.replicas {
                if st.flows.iter().flatten().any(|f| f.replica == replica) {
                    actions.push(Action::Crash { replica });
                }
            }
        }
    }
}
