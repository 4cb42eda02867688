//! The call to payment-service, split the way the contract's pipeline is:
//! [`client`] makes exactly one HTTP attempt and classifies its outcome;
//! [`call`] is the policy around attempts (the timeout budget now; retries,
//! the circuit breaker and the bulkhead wrap the attempt there as actor
//! messages, without the order flow changing).

pub mod call;
pub mod client;

pub use call::{PaymentCall, PaymentError};
pub use client::{Attempt, PaymentClient, Receipt};
