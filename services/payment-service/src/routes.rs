//! One module per resource.

pub mod admin;
pub mod charge;
pub mod charges;
pub mod health;
pub mod ledger;
pub mod metrics;
