//! The mesh client end to end: a real `mesh_tower::Mesh` with its whole
//! stack (router, retries, timeouts, balancer, limits, outlier detection,
//! pooled connections) against real upstreams on 127.0.0.1
//! ([`mesh_tests::upstream`]), real config files and a real DNS server
//! (dnsmasq). No mocks on the HTTP path.
//!
//! Loops are bounded in count and time; timing bounds are generous (they
//! catch a missing timeout, not a slow machine).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

mod common;

mod balance;
mod circuit;
mod discovery;
mod outlier;
mod retry;
mod timeout;
