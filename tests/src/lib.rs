//! # mesh-tests: cross-crate integration tests
//!
//! Tests that cross crate boundaries (client stack against real servers,
//! control plane against real xDS clients) live in `tests/` of this package.
//! None yet: each crate's own tests sit beside its code.
