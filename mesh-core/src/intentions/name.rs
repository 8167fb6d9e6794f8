//! Intention names (`app-ui`, `prod/app-ui`, `prod/*`, `*`) and their
//! precedence.
//!
//! Consul's precedence table ranks an intention by which of its four naming
//! components are exact and which are `*`; Consul forbids a wildcard namespace
//! with an exact name, which leaves three shapes per side and nine ranks:
//!
//! | precedence | source | destination |
//! | --- | --- | --- |
//! | 9 | `ns/name` | `ns/name` |
//! | 8 | `ns/*` | `ns/name` |
//! | 7 | `*` | `ns/name` |
//! | 6 | `ns/name` | `ns/*` |
//! | 5 | `ns/*` | `ns/*` |
//! | 4 | `*` | `ns/*` |
//! | 3 | `ns/name` | `*` |
//! | 2 | `ns/*` | `*` |
//! | 1 | `*` | `*` |
//!
//! A bare `name` means `default/name` (the namespace of a SPIFFE ID defaults
//! to `default`), so configs without namespaces get Consul OSS's order:
//! `a -> b` (9), `* -> b` (7), `a -> *` (3), `* -> *` (1).

use std::fmt;

use crate::identity::{DEFAULT_NAMESPACE, SpiffeIdError, validate_segment};

/// Why an intention's source or destination name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// `*/name`: Consul has no wildcard namespace with an exact name.
    #[error("a wildcard namespace needs a wildcard name (\"*\"), not \"*/<name>\"")]
    WildcardNamespace,
    /// A namespace or name that is not one valid SPIFFE path segment.
    #[error("not a valid namespace or service name")]
    Segment(#[source] SpiffeIdError),
}

/// A parsed source or destination of an intention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NamePattern {
    /// `*`: every service in every namespace.
    Any,
    /// `ns/*`: every service of one namespace.
    Namespace(Box<str>),
    /// `ns/name` or `name` (namespace `default`).
    Exact {
        /// Namespace.
        namespace: Box<str>,
        /// Service name.
        name: Box<str>,
    },
}

// === impl NamePattern ===

impl NamePattern {
    /// Parses `s` (see the module docs for the forms).
    pub(crate) fn parse(s: &str) -> Result<Self, NameError> {
        if s == "*" || s == "*/*" {
            return Ok(Self::Any);
        }
        let (namespace, name) = s.split_once('/').unwrap_or((DEFAULT_NAMESPACE, s));
        if namespace == "*" {
            return Err(NameError::WildcardNamespace);
        }
        validate_segment(namespace).map_err(NameError::Segment)?;
        if name == "*" {
            return Ok(Self::Namespace(namespace.into()));
        }
        validate_segment(name).map_err(NameError::Segment)?;
        Ok(Self::Exact {
            namespace: namespace.into(),
            name: name.into(),
        })
    }

    /// 2 for `ns/name`, 1 for `ns/*`, 0 for `*`.
    pub(crate) fn specificity(&self) -> u8 {
        match self {
            Self::Any => 0,
            Self::Namespace(_) => 1,
            Self::Exact { .. } => 2,
        }
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Namespace(ns) => write!(f, "{ns}/*"),
            Self::Exact { namespace, name } => write!(f, "{namespace}/{name}"),
        }
    }
}

/// Consul's precedence (1..=9, higher wins) of an intention from `source` to
/// `destination`, as in the table in the module docs.
///
/// ```
/// use mesh_core::intentions::precedence;
/// assert_eq!(precedence("app-ui", "news-service"), Ok(9));
/// assert_eq!(precedence("*", "news-service"), Ok(7));
/// assert_eq!(precedence("app-ui", "*"), Ok(3));
/// assert_eq!(precedence("*", "*"), Ok(1));
/// ```
pub fn precedence(source: &str, destination: &str) -> Result<u8, NameError> {
    let s = NamePattern::parse(source)?;
    let d = NamePattern::parse(destination)?;
    Ok(precedence_of(&s, &d))
}

pub(crate) fn precedence_of(source: &NamePattern, destination: &NamePattern) -> u8 {
    1 + 3 * destination.specificity() + source.specificity()
}

/// Splits a request's destination (`name` or `ns/name`) into namespace and
/// name, without allocating.
pub(crate) fn split_service(s: &str) -> (&str, &str) {
    s.split_once('/').unwrap_or((DEFAULT_NAMESPACE, s))
}
