//! order-service: takes orders and charges them through payment-service,
//! without ever charging an order twice or losing one.
//!
//! # Layout
//! - [`config`]: every knob, as environment variable and flag.
//! - [`startup`]: binds the listener (port 0 works) and wires every route.
//! - [`domain`]: the order and the request that creates one, parsed at the edge.
//! - [`limits`]: who may place orders (client keys), and how fast.
//! - [`orders`]: the order flow: record, charge, persist the outcome, end
//!   the key; the fence that keeps an answer of "nothing charged" true.
//! - [`payment`]: the call to payment-service: one HTTP attempt
//!   ([`payment::client`]), the budget and retry policy
//!   ([`payment::retry`]) and the pipeline through breaker and bulkhead
//!   ([`payment::call`]).
//! - [`reconcile`]: what the reconciler does for a `pending` order.
//! - [`reliability`]: starts the supervised actors of the `actors` crate.
//! - [`store`]: where orders live, behind a trait (in memory by default).
//! - [`routes`]: the HTTP handlers, thin.
//! - [`error`]: the one place where a failure becomes an HTTP answer.
//! - [`metrics`]: the Prometheus metrics (`/metrics` is a route).
//! - [`openapi`]: the OpenAPI description, `GET /openapi.json`.
#![forbid(unsafe_code)]

pub mod config;
pub mod domain;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod orders;
pub mod payment;
pub mod reconcile;
pub mod reliability;
pub mod routes;
pub mod startup;
pub mod store;

pub use config::Config;
pub use startup::Application;
