//! # mesh-core: the model and the pure policy of the proxyless mesh
//!
//! Everything that decides *what* the mesh does lives here; everything that
//! *does* it (sockets, timers, tasks) lives in the crates above
//! (`mesh-discovery`, `mesh-tower`, `mesh-tonic`). This crate has no I/O, no
//! tokio and no tower: clocks are passed in as [`std::time::Instant`]s (or a
//! [`clock::Clock`]), randomness as a seeded [`rand::Rng`], so every decision is
//! deterministic under test.
//!
//! Where each module sits on the client request path (outermost first):
//!
//! | step | module |
//! | --- | --- |
//! | config, validated into typed policy | [`config`] |
//! | router: match path/method/headers, pick a subset by weight | [`route`] |
//! | retry: conditions, backoff with jitter, budget, `Retry-After` | [`retry`] |
//! | balancer: the configured algorithm over the endpoint set | [`balance`] |
//! | concurrency limits (fail fast) | [`circuit`] |
//! | per-endpoint outcomes: outlier ejection, slow start | [`outlier`] |
//!
//! and on the server side: [`identity`] (SPIFFE IDs) and [`intentions`]
//! (authorization).
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod balance;
pub mod circuit;
pub mod clock;
pub mod config;
pub mod endpoint;
pub mod identity;
pub mod intentions;
pub mod outlier;
pub mod retry;
pub mod route;

pub use config::MeshConfig;
pub use endpoint::Endpoint;
