//! The order protocol of order-service, PostgreSQL and payment-service,
//! as a model that [stateright](https://docs.rs/stateright) checks
//! exhaustively within bounds: every interleaving of clients, replicas,
//! statements, payment requests, the reconciler, time, crashes and faults.
//! It models the design as the code implements it, one transition per
//! statement, message or answer; when the code's protocol changes, this
//! model changes in the same commit.
//!
//! | model step | the code it stands for |
//! |---|---|
//! | `Send` | `POST /orders` reaching `Orders::create` on a replica |
//! | `Pc::Reserve` | `KeyLease::reserve` → `reserve_key` (key and `pending` order in one statement, or a takeover of a free key, or the key as it stands) |
//! | `Pc::Insert` | `Orders::place` → `insert_order` (a `NewOrder` write without a key), and `unrecorded` when it fails |
//! | `Pc::ResumeGet` | `Orders::resume` → `OrderStore::get` |
//! | `Pc::ResumeClaim`, `Pc::RedriveClaim` | `claim` → `write_outcome(.., claiming)` (an `Outcome` write with `calls = i.calls - 1`) |
//! | `Pc::Call` (`Refused`) | `PaymentCall::charge`: breaker or bulkhead refusal, connection refused (`Failed { reached: false }`) |
//! | `Pc::Await` | the call's answer, or `PaymentError::TimedOut` |
//! | `Pc::Settle` | `settle`, then `Orders::persist` (`complete_key`, or `update`) or `update` for a re-drive: an `Outcome` write |
//! | `Pc::AwaitVoid` | `fence`: `PaymentCall::void` in `unrecorded` and `unsettled` |
//! | `Pc::FinishKey` | `finish_key` → `complete_key` with `Settle::AsItStands` |
//! | `Pc::Release` | `KeyLease::release` / its drop → `release_key` |
//! | `Pc::Unrecorded*` | `settle_unrecorded`: void, then the final order inserted or moved from `pending` |
//! | `Pc::Redrive` | `reconcile::redrive_once`: read the claimed row |
//! | `Claim` | `due_at` passing, then `claim_due` (`FOR UPDATE SKIP LOCKED`; a `Stall` while a flow's call for the order is under way) |
//! | `Deliver` | payment-service's `POST /charge` (`ledger.record`, replay, `charge-voided`, decline, injected 500 before or after the charge, a 4xx before the ledger) and `POST /charges/{key}/void` |
//! | `Read`, `HangUp` | a client's `GET /orders/{id}`; a client's TCP reset (the flow goes on: `Orders::create` spawns it) |
//! | `LeaseEnds` | time: `lease_until` passing (a `Stall` while its holder is alive) |
//! | `Sweep` | `expires_at` passing, then `sweep_keys` |
//! | `Crash` | SIGKILL of a replica: its flows, re-drive and unsent releases are lost |
//! | `CommitLate`, `LoseLate` | a statement given up on (timeout, broken connection, `FATAL`) committing later, or never |
//!
//! Timing the model relies on, each a setting of the code: the hold before
//! a re-drive (`hold`, the longest call) covers a call, so a claim during
//! one is a fault (`Stall`), as is a lease that ends while its holder is
//! alive; a statement given up on commits within PostgreSQL's
//! `statement_timeout`, long before a key's TTL, so no TTL ends while one
//! is on its way; a client retries within its key's TTL, which ends only
//! for keys nobody may still send (or whose order stays pending).
//!
//! Not modelled: the in-memory store (single replica, no late commits);
//! the attempts inside one payment call (each is a request like the
//! call's one; a call's `reached` accumulates over its attempts, and
//! re-drives add requests in flight the same way); more than one re-drive
//! per replica at a time (the code runs up to four; the call counter
//! orders them as it orders two replicas'); payment's injected faults on a
//! key already charged or voided (they delay an answer, never change
//! one); the re-insert of a key's forgotten order (the in-memory store's
//! `ORDERS_MAX`); shutdown's drain (a drain that outlives its grace is a
//! crash, and a refusal at the door writes nothing).

mod call;
mod check;
mod client;
pub mod config;
mod flow;
mod model;
mod outcome;
mod payment;
mod properties;
pub mod state;
mod store;
pub mod trace;

pub use check::{Found, counterexample, counterexample_config};
pub use config::{Budget, Config, Guard, Guards, Purchase};
pub use model::{Action, Protocol};
pub use outcome::How;
pub use payment::PayFault;
