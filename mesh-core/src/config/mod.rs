//! Configuration: one schema for `MESH_CONFIG`, `meshctl validate`,
//! `meshctl apply` and `meshctl serve --config` (YAML, TOML or JSON).
//!
//! Parsing and validation are being built (issue "Foundation"); the typed
//! model they produce is in [`model`] and re-exported here.

pub mod model;

pub use model::*;
