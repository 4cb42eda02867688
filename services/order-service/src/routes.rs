//! HTTP handlers: parse at the edge, call the flow, answer.

pub mod admin;
pub mod dashboard;
pub mod health;
pub mod metrics;
pub mod orders;
