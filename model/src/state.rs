//! The world the checker explores, as small values: PostgreSQL's rows,
//! payment's ledger and the requests on their way to it, each replica's
//! flows, the clients, the faults left to spend, and the ghost facts the
//! properties read (what each client was told). Orders are numbered by
//! the request that created them: a request's candidate order id.

use crate::config::Budget;

/// An index: of a client, request slot, order, key or replica.
pub type Ix = u8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Pending,
    Completed,
    Failed,
}

/// An `orders` row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Row {
    pub status: Status,
    pub maybe_charged: bool,
    pub calls: u8,
}

/// What a flow knows of its order: `maybe_charged` before its call, and
/// the call count it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Seen {
    pub maybe_charged: bool,
    pub calls: u8,
}

/// An `idempotency_keys` row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyRow {
    pub order: Ix,
    /// The request slot holding it.
    pub holder: Option<Ix>,
    pub lease_live: bool,
    /// The answer a completed key replays.
    pub response: Option<Reply>,
}

/// How a payment key ends at payment-service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pay {
    Nothing,
    Charged,
    Voided,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Charge,
    Void,
}

/// A request on its way to payment-service; `reply` is the slot still
/// waiting for its answer (none once the caller gave up or died).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Msg {
    pub op: Op,
    pub order: Ix,
    pub reply: Option<Ix>,
}

/// payment-service's answer, as the caller reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PayReply {
    Charged,
    Declined,
    Voided,
    /// A 500: before the charge or after it, the caller cannot tell.
    Failed,
    /// A 4xx other than 402: refused before the ledger (credentials
    /// rotated, a request it would not read).
    Rejected,
}

/// A payment call's result (`PaymentError` or a receipt).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CallResult {
    Charged,
    Declined,
    Voided,
    /// `Failed { reached }`; not reached: breaker, bulkhead, refused.
    Failed {
        reached: bool,
    },
    TimedOut,
}

impl CallResult {
    /// `PaymentError::outcome_unknown`.
    pub fn outcome_unknown(self) -> bool {
        matches!(
            self,
            CallResult::Failed { reached: true } | CallResult::TimedOut
        )
    }
}

/// A write given up on by its caller, which may still commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stmt {
    /// `reserve_key`: the key with its pending order, or a takeover.
    Reserve { key: Ix, holder: Ix, order: Ix },
    /// `insert_order`: an unkeyed order, pending.
    Insert { order: Ix },
    /// An `Outcome` write from `pending`; `claiming` adds the count check;
    /// `complete` ends the key in the same statement (`complete_key`).
    Write {
        order: Ix,
        to: Status,
        seen: Seen,
        claiming: bool,
        complete: Option<(Ix, Ix, Reply)>,
    },
    /// `complete_key` with the order as it stands.
    Complete { key: Ix, holder: Ix, stored: Reply },
    /// `release_key`.
    Release { key: Ix, holder: Ix },
    /// `settle_unrecorded`'s write: inserted final, or moved from pending.
    Final { order: Ix, to: Status },
}

/// What a client is told (`charge` member: created, "none", "unknown").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reply {
    Created(Ix),
    /// 402: never charged, and never will be.
    Declined(Ix),
    /// `charge: "none"`, naming the order when there is one.
    Nothing(Option<Ix>),
    /// `charge: "unknown"`.
    Unknown(Option<Ix>),
    /// The connection broke: no answer at all.
    Lost,
}

/// Where a flow is: the next statement, message or answer it makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pc {
    Reserve,
    Insert,
    ResumeGet,
    ResumeClaim(Seen),
    Call,
    Await,
    Settle(CallResult),
    /// Waiting for a void: the answer if voided, the answer otherwise,
    /// and whether the order is then settled after the answer.
    AwaitVoid {
        voided: Reply,
        otherwise: Reply,
        unrecorded: bool,
    },
    /// Ending the key with the answer it will replay, then answering.
    FinishKey(Reply),
    Release,
    /// `settle_unrecorded`, after the answer: void, then write.
    Unrecorded,
    UnrecordedAwait,
    UnrecordedWrite(Status),
    /// The reconciler's re-drive: read, then claim.
    Redrive,
    RedriveClaim(Seen),
}

/// A request's flow on a replica, or a replica's re-drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    pub replica: Ix,
    /// The reconciler's re-drive, not a request.
    pub redrive: bool,
    /// The client still waiting for the answer.
    pub client: Option<Ix>,
    pub key: Option<Ix>,
    pub order: Ix,
    pub seen: Seen,
    /// The flow holds its key's lease.
    pub holds: bool,
    /// The lease ran out while the flow was alive (ghost).
    pub lease_lost: bool,
    pub pc: Pc,
    pub inbox: Option<PayReply>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Client {
    /// May send its next request, under `key` if keyed.
    Idle {
        key: Option<Ix>,
    },
    Waiting(Ix),
    /// Told "unknown" about this order: reads it until it ends.
    Reading(Ix),
    Done,
}

/// Facts only the properties read.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Ghost {
    /// By order: its purchase, and its client key.
    pub purchase: Vec<Ix>,
    pub key: Vec<Option<Ix>>,
    /// By order: charges payment-service recorded.
    pub charges: Vec<u8>,
    /// Bit sets of orders / keys.
    pub ever_completed: u32,
    pub answered_created: u32,
    pub answered_nothing: u32,
    pub keys_answered_nothing: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub clients: Vec<Client>,
    /// Requests sent, by client.
    pub sent: Vec<u8>,
    /// By client, its purchase; by purchase, the key it is bought under
    /// now (a purchase's clients start anew under one new key).
    pub purchase_of: Vec<Ix>,
    pub purchase_key: Vec<Option<Ix>>,
    /// Request slots, then one re-drive slot per replica.
    pub flows: Vec<Option<Flow>>,
    pub orders: Vec<Option<Row>>,
    pub keys: Vec<Option<KeyRow>>,
    pub ledger: Vec<Pay>,
    /// Kept sorted: the order of requests in flight is no state.
    pub net: Vec<Msg>,
    pub late: Vec<Stmt>,
    pub budget: Budget,
    pub next_request: Ix,
    pub next_key: Ix,
    /// Replicas that have served anything, numbered in order of first use:
    /// the others are all alike, and one of them stands for all.
    pub replicas_used: Ix,
    pub ghost: Ghost,
}

pub fn bit(i: Ix) -> u32 {
    1 << i
}

impl State {
    pub fn flow(&self, slot: Ix) -> Option<&Flow> {
        self.flows[slot as usize].as_ref()
    }

    pub fn flow_mut(&mut self, slot: Ix) -> &mut Flow {
        self.flows[slot as usize]
            .as_mut()
            .expect("a step of a flow that exists")
    }

    pub fn row(&self, order: Ix) -> Option<Row> {
        self.orders[order as usize]
    }

    pub fn send(&mut self, op: Op, order: Ix, reply: Ix) {
        self.net.push(Msg {
            op,
            order,
            reply: Some(reply),
        });
        self.net.sort();
    }

    /// Nobody waits in `slot` any more: its requests still travel, their
    /// answers reach nobody.
    pub fn forget(&mut self, slot: Ix) {
        for msg in &mut self.net {
            if msg.reply == Some(slot) {
                msg.reply = None;
            }
        }
        self.net.sort();
    }
}
