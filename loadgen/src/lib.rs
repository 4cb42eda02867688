//! loadgen: a load generator for reliable-orders that tells the truth about
//! latency and about money.
//!
//! Compatible with the Go original's invocations (`-url … -n … -c … -t …
//! -idempotent`), it adds an open model with a constant or staged arrival
//! rate whose latencies are measured from each request's *intended* send
//! time (so a stalled server cannot hide behind coordinated omission), HDR
//! percentiles, failure categories down to the problem+json `title`,
//! idempotency replay checks, a ledger audit and an SVG timeline.
//!
//! # Layout
//! - [`cli`]: flags (single-dash Go forms accepted), durations, stages.
//! - [`client`]: one HTTP/1.1 connection, and how a response or an error is
//!   classified.
//! - [`engine`]: the closed and open models, stages, replays.
//! - [`report`]: the recorder, the report (JSON round-trips) and its text.
//! - [`timeline`]: the SVG picture of the run.
//! - [`breaker`]: the breaker's state over the run, followed on its event
//!   stream.
//! - [`audit`]: charges in payment-service's ledger against the 201s seen.
#![forbid(unsafe_code)]

pub mod audit;
pub mod breaker;
pub mod cli;
pub mod client;
pub mod engine;
pub mod plan;
pub mod report;
pub mod timeline;
