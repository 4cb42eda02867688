//! The call to payment-service, split the way the contract's pipeline is:
//! [`client`] makes exactly one HTTP attempt and classifies its outcome;
//! [`retry`] is the budget and retry policy; [`call`] runs one call through
//! retry, circuit breaker and bulkhead to the client. [`link`] is the
//! connection itself: plain or TLS, with or without a client certificate.

pub mod admin;
pub mod call;
pub mod client;
pub mod link;
pub mod retry;

pub use call::{CallPolicy, PaymentCall, Pipeline};
pub use client::{Attempt, Fence, PaymentClient, Receipt};
pub use link::PaymentLink;
pub use retry::{CallReport, Failure, PaymentError};
