//! What the checker explores: the purchases and their clients, the
//! replicas, how many faults of each kind may strike on one path, and
//! which of the code's guards are on. Faults are budgets, not
//! probabilities: every path that spends them in any order, at any step,
//! is explored.

/// A guard the protocol relies on. Each can be switched off, to show that
/// the checker then finds the money bug it prevents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Guard {
    /// The `Outcome` write's `o.status = i.from_status`: status only moves
    /// forward.
    StatusCas,
    /// The call counter: `claim` requires the count it read
    /// (`o.calls = i.calls - 1`), and a `failed` write an order no other flow
    /// took into a later call (`NOT (i.status = 'failed' AND i.calls < o.calls)`).
    CallCounter,
    /// `AND holder = $2` when a key is completed or released.
    HolderCheck,
    /// The first write stores the order `pending` *and* possibly charged
    /// (`possibly_charged`), before the first attempt leaves.
    PossiblyChargedFirst,
    /// The key sweep keeps the keys of `pending` orders.
    SweepKeepsPending,
    /// The answer rule: "nothing was charged" only when nothing can have
    /// been written, or after the payment key is voided (`fence`).
    AnswerRule,
    /// Only a 402 is a decline: another 4xx (refused before payment's
    /// ledger) leaves an order that may have been charged before pending
    /// (`retry.rs`, `Failure::Rejected`).
    OnlyPaymentDeclines,
}

impl Guard {
    pub const ALL: [Guard; 7] = [
        Guard::StatusCas,
        Guard::CallCounter,
        Guard::HolderCheck,
        Guard::PossiblyChargedFirst,
        Guard::SweepKeepsPending,
        Guard::AnswerRule,
        Guard::OnlyPaymentDeclines,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Guard::StatusCas => "status-compare-and-set",
            Guard::CallCounter => "call-counter",
            Guard::HolderCheck => "holder-check",
            Guard::PossiblyChargedFirst => "possibly-charged-first",
            Guard::SweepKeepsPending => "sweep-keeps-pending",
            Guard::AnswerRule => "answer-rule",
            Guard::OnlyPaymentDeclines => "only-402-declines",
        }
    }

    fn bit(self) -> u8 {
        1 << Guard::ALL.iter().position(|g| *g == self).unwrap_or(0)
    }
}

/// The guards that are on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Guards(u8);

impl Guards {
    pub fn all() -> Self {
        Guards(0b111_1111)
    }

    pub fn without(self, guard: Guard) -> Self {
        Guards(self.0 & !guard.bit())
    }

    pub fn on(self, guard: Guard) -> bool {
        self.0 & guard.bit() != 0
    }
}

/// One purchase: what a customer wants bought once. Its clients send its
/// requests; two clients of one keyed purchase are a double submit.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Purchase {
    pub keyed: bool,
    /// Over payment's limit: every charge of it is declined (402).
    pub declined: bool,
    pub clients: u8,
}

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    Crash,
    DbError,
    LateCommit,
    Refusal,
    Timeout,
    PaymentError,
    /// A flow alive past its lease or hold: its key taken over, or its
    /// order claimed by a reconciler while it still works on it.
    Stall,
    /// A client hanging up: its flow goes on without it.
    HangUp,
}

/// How many faults of each kind one path may suffer, and in all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Budget {
    /// Faults of any kind.
    pub total: u8,
    /// A replica killed (SIGKILL): its flows and reconciler vanish.
    pub crashes: u8,
    /// A statement that fails having written nothing.
    pub db_errors: u8,
    /// A statement given up on by its caller that may still commit.
    pub late_commits: u8,
    /// A call refused before it leaves (breaker, bulkhead, payment down).
    pub refusals: u8,
    /// A call (or void) whose answer never comes in time.
    pub timeouts: u8,
    /// Payment answering 500: before charging, or after the charge.
    pub payment_errors: u8,
    /// A flow outliving its lease or its order's hold.
    pub stalls: u8,
    /// A client hanging up before its answer.
    pub hangups: u8,
}

impl Budget {
    fn of(&mut self, fault: Fault) -> &mut u8 {
        match fault {
            Fault::Crash => &mut self.crashes,
            Fault::DbError => &mut self.db_errors,
            Fault::LateCommit => &mut self.late_commits,
            Fault::Refusal => &mut self.refusals,
            Fault::Timeout => &mut self.timeouts,
            Fault::PaymentError => &mut self.payment_errors,
            Fault::Stall => &mut self.stalls,
            Fault::HangUp => &mut self.hangups,
        }
    }

    /// Whether `fault` may still strike on this path.
    pub fn left(mut self, fault: Fault) -> bool {
        self.total > 0 && *self.of(fault) > 0
    }

    pub fn spend(&mut self, fault: Fault) {
        self.total -= 1;
        *self.of(fault) -= 1;
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub purchases: Vec<Purchase>,
    pub replicas: u8,
    /// Requests one client may send in all (its retries included).
    pub requests_per_client: u8,
    pub faults: Budget,
    pub guards: Guards,
}

impl Config {
    /// The bounded check `make model` runs in CI: a keyed purchase and an
    /// unkeyed one, two replicas, one fault of each kind.
    pub fn ci() -> Self {
        Config {
            purchases: vec![
                Purchase {
                    keyed: true,
                    declined: false,
                    clients: 1,
                },
                Purchase {
                    keyed: false,
                    declined: false,
                    clients: 1,
                },
            ],
            replicas: 2,
            requests_per_client: 2,
            faults: Budget {
                total: 2,
                crashes: 1,
                db_errors: 1,
                late_commits: 1,
                refusals: 1,
                timeouts: 1,
                payment_errors: 1,
                stalls: 1,
                hangups: 1,
            },
            guards: Guards::all(),
        }
    }

    /// `(purchase, keyed)` of each client, in order.
    pub fn clients(&self) -> Vec<(u8, bool)> {
        let mut clients = Vec::new();
        for (i, p) in self.purchases.iter().enumerate() {
            for _ in 0..p.clients {
                clients.push((i as u8, p.keyed));
            }
        }
        clients
    }

    /// Request slots: every request a client may send.
    pub fn requests(&self) -> usize {
        self.clients().len() * self.requests_per_client as usize
    }
}
