//! Black-box tests of order-service: the real app on a random port, charging
//! a real payment-service on its own random port over real HTTP.

mod admin;
mod answers;
mod batch;
mod browser;
mod dashboard;
mod database;
mod edge;
mod full_store;
mod gated;
mod hangup;
mod hangups;
mod health;
mod helpers;
mod idempotency;
mod limits;
mod link;
mod loadgen;
mod orders;
mod payment_failures;
mod pki;
mod postgres;
mod reliability;
mod supervision;
mod tls;
mod validation;
