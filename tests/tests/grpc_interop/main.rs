//! `MeshChannel` against real Python grpcio helloworld servers
//! (`tests/py/greeter_server.py`, the peers venv): weighted split, retries
//! on UNAVAILABLE, deadline propagation as the server sees it, failures in
//! trailers (trailers-only and after a message) counted by outlier
//! detection, and a server killed mid-call. Every test skips without
//! grpcio, and fails then under `CI=true`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod deadline;
mod failures;
mod split;
