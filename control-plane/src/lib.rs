//! # mesh-control-plane: `meshctl` and `meshctl serve`
//!
//! The operator CLI and the control plane. `meshctl serve` keeps the mesh's
//! state (applied config versions, registered endpoints, intentions) in
//! SQLite, serves the REST API and dashboard on the HTTP address and the xDS
//! ADS server on the gRPC address, so that Envoy, stock gRPC xDS clients and
//! our library all follow one config.
//!
//! | module | role |
//! | --- | --- |
//! | [`cmd`] | the subcommands |
//! | [`certs`] | a mesh root CA and SPIFFE leaf certificates (`meshctl certs`) |
//! | [`client`] | the CLI's HTTP client of the REST API |
//! | [`state`] | the snapshot the xDS server serves, and what xDS reports back |
//! | [`store`] | SQLite persistence |
//! | [`api`] | REST API under `/api/v1` |
//! | [`xds`] | the xDS v3 ADS server and resource generation |
//! | [`serve`] | `meshctl serve`: wires store, API and xDS together |

pub mod api;
pub mod certs;
pub mod client;
pub mod cmd;
pub mod serve;
pub mod state;
pub mod store;
pub mod xds;
