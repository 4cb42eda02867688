//! Black-box tests of payment-service: the real app on a random port, real
//! HTTP. One test binary, one module per feature.

mod access;
mod admin;
mod charge;
mod durability;
mod faults;
mod helpers;
mod voids;
