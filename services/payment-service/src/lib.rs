//! payment-service: the downstream that order-service must survive. It is a
//! faithful idempotent charge ledger (the thing that makes retries safe) with
//! fault injection bolted on (the thing that makes retries necessary).
//!
//! # Layout
//! - [`config`]: every knob, as environment variable and flag.
//! - [`startup`]: binds the listener (port 0 works) and wires every route.
//! - [`state`]: what every worker shares.
//! - [`ledger`]: charges keyed by `Idempotency-Key`, durable through an
//!   append-only log when `PAYMENT_LEDGER_PATH` is set.
//! - [`faults`]: the runtime-changeable faults and the dice they roll.
//! - [`routes`]: one file per resource; `charge` is the processing pipeline.
//! - [`metrics`]: the Prometheus metrics and `/metrics`.
//! - [`openapi`]: the OpenAPI description, `GET /openapi.json`.
//! - [`error`]: the one place where a failed charge becomes an HTTP answer.
#![forbid(unsafe_code)]

pub mod config;
pub mod error;
pub mod faults;
pub mod ledger;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod startup;
pub mod state;

pub use config::Config;
pub use startup::Application;
