//! Configuration: one schema for `MESH_CONFIG`, `meshctl validate`,
//! `meshctl apply` and `meshctl serve --config`, in YAML, TOML or JSON.
//!
//! # From text to policy
//!
//! A config file is read in three steps, whatever its format:
//!
//! 1. **syntax**: the text becomes a small tree of values, each remembering
//!    its line (YAML via yaml-rust2's marked events, TOML via toml_edit's
//!    spans, JSON via serde_json plus a position-tracking walk). Duplicate
//!    keys are errors in every format.
//! 2. **shape**: the tree is decoded into the typed [`model`]. Every field
//!    must be known: a typo such as `retyr:` must never silently do nothing,
//!    so it is an error that names the allowed fields and suggests the
//!    closest one. Durations are strings with a unit (`250ms`, `2s`, `5m`).
//! 3. **rules**: ranges and references between fields (a split naming a
//!    subset that does not exist, `hash_on` without a hashing balancer, ...).
//!    These same rules run on configs built in code via
//!    [`MeshConfig::validate`].
//!
//! A wrong field does not stop the run: all problems are collected into one
//! [`ConfigErrors`], each naming the file, line, field path and what is
//! allowed:
//!
//! ```text
//! mesh.yaml:12: services.news-service.retry.attempts: must be between 1 and 10, got 0
//! ```
//!
//! mesh-core does no I/O: callers read the file and pass its text to
//! [`parse_str`]. The environment contract (`MESH_ENDPOINTS_<SVC>`, ...) is
//! in [`MeshEnv`].
//!
//! ```
//! use mesh_core::config::{Format, parse_str};
//! let cfg = parse_str(
//!     "services:\n  news-service:\n    endpoints: [{ address: 127.0.0.1:8081 }]\n",
//!     Format::Yaml,
//!     "mesh.yaml",
//! ).unwrap();
//! assert_eq!(cfg.summary().to_string(), "1 service, 1 endpoint, 0 routes, 0 intentions, 0 gateways");
//!
//! let err = parse_str("services:\n  news-service:\n    retyr: {}\n", Format::Yaml, "mesh.yaml").unwrap_err();
//! assert!(err.to_string().contains("mesh.yaml:3: services.news-service.retyr: unknown field `retyr`; did you mean `retry`?"));
//! ```

mod addr;
mod decode;
mod duration;
mod env;
mod error;
mod health;
mod json;
pub mod model;
mod render;
mod toml;
mod tree;
mod validate;
mod yaml;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::str::FromStr;

pub use addr::{EndpointListError, is_service_name, parse_endpoint_list};
pub use duration::{DurationError, format_duration, parse_duration};
pub use env::{MeshEnv, TlsMode, TlsModeError, TraceMode, TraceModeError};
pub use error::{ConfigError, ConfigErrorKind, ConfigErrors};
pub use health::{DEFAULT_HEALTH_PATH, HealthCheckConfig};
pub use model::*;
pub use render::ConfigSummary;

/// A config file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// YAML 1.2 (`.yaml`, `.yml`; the default).
    #[default]
    Yaml,
    /// TOML (`.toml`).
    Toml,
    /// JSON (`.json`).
    Json,
}

impl Format {
    /// The format of a file by its extension: `.toml`, `.json`, else YAML.
    pub fn from_path(path: &Path) -> Format {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("toml") => Format::Toml,
            Some("json") => Format::Json,
            _ => Format::Yaml,
        }
    }
}

/// A format name other than `yaml`, `toml` or `json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown config format `{0}`; one of yaml, toml, json")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "yaml" | "yml" => Ok(Format::Yaml),
            "toml" => Ok(Format::Toml),
            "json" => Ok(Format::Json),
            _ => Err(UnknownFormat(s.to_string())),
        }
    }
}

/// Parses and validates a config text; `origin` (the file name) prefixes
/// every error message. Never panics, whatever the input.
pub fn parse_str(text: &str, format: Format, origin: &str) -> Result<MeshConfig, ConfigErrors> {
    let tree = match format {
        Format::Yaml => yaml::parse(text),
        Format::Toml => toml::parse(text),
        Format::Json => json::parse(text),
    };
    let root = tree.map_err(|errors| ConfigErrors::new(origin, errors))?;
    // An empty YAML document (or only comments) is an empty config.
    let root = if root.kind == tree::Kind::Null {
        tree::Node::new(tree::Kind::Map(Vec::new()), root.line)
    } else {
        root
    };
    validate::decode_and_check(&root, origin)
}
