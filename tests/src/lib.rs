//! # mesh-tests: cross-crate integration tests and peer harnesses
//!
//! The library holds harnesses for the real third-party peers tests run
//! against (see `../shared/PEERS.md`), shared by every crate's tests; the
//! package's `tests/` folder holds tests that cross crate boundaries.
//!
//! A peer harness skips (prints a message, the test passes) when its peer is
//! not installed, and fails when `CI=true`.

pub mod dnsmasq;
pub mod envoy;
pub mod grpcio;
pub mod prometheus;
pub mod tls;
pub mod upstream;
