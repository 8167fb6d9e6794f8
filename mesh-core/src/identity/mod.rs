//! SPIFFE identities: `spiffe://<trust_domain>/ns/<namespace>/svc/<service>`.
//!
//! Every workload in the mesh carries an X.509 certificate whose URI SAN is a
//! [SPIFFE ID]: a URI naming a *trust domain* (the authority that issues
//! identities, `mesh.local` by default) and a *path* naming the workload
//! within it. Clients verify the server's SPIFFE ID instead of a DNS name, and
//! servers feed the client's SPIFFE ID to [intentions](crate::intentions).
//!
//! [`SpiffeId`] accepts any ID that is valid per the SPIFFE ID specification
//! and refuses everything else with a [`SpiffeIdError`] that says what is
//! wrong:
//!
//! - the scheme is exactly `spiffe://`;
//! - the trust domain is non-empty, at most 255 bytes, of lower-case letters,
//!   digits, `.`, `-` and `_` (so no port, no user info, no upper case);
//! - the path is empty or `/`-separated segments of `A-Z a-z 0-9 . - _`,
//!   none empty, none `.` or `..`, no trailing `/` (so no query, no fragment,
//!   no percent-encoding);
//! - the whole ID is at most 2048 bytes.
//!
//! The mesh names services with the path `/ns/<namespace>/svc/<service>`
//! ([`SpiffeId::for_service`], [`SpiffeId::service_identity`]); IDs of other
//! shapes (e.g. SPIRE's `/workload/...`) are valid IDs but name no service.
//!
//! ```
//! use mesh_core::identity::SpiffeId;
//!
//! let id: SpiffeId = "spiffe://mesh.local/ns/default/svc/news-service".parse()?;
//! assert_eq!(id.trust_domain(), "mesh.local");
//! let svc = id.service_identity().unwrap();
//! assert_eq!((svc.namespace, svc.service), ("default", "news-service"));
//! assert_eq!(SpiffeId::for_service("mesh.local", "default", "news-service")?, id);
//! assert!("spiffe://Mesh.local/x".parse::<SpiffeId>().is_err());
//! # Ok::<(), mesh_core::identity::SpiffeIdError>(())
//! ```
//!
//! [SPIFFE ID]: https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md

use std::fmt;
use std::str::FromStr;

#[cfg(test)]
mod tests;

/// The URI scheme and separator every SPIFFE ID starts with.
pub const SCHEME_PREFIX: &str = "spiffe://";
/// Longest SPIFFE ID accepted, in bytes (SPIFFE ID spec).
pub const MAX_ID_LEN: usize = 2048;
/// Longest trust domain accepted, in bytes (SPIFFE ID spec).
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;
/// The namespace of a service when none is given.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Why a string is not a valid SPIFFE ID (or trust domain, or path segment).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeIdError {
    /// The input was empty.
    #[error("SPIFFE ID is empty")]
    Empty,
    /// The input does not start with `spiffe://`.
    #[error("SPIFFE ID must start with \"spiffe://\"")]
    WrongScheme,
    /// Nothing between `spiffe://` and the path.
    #[error("SPIFFE ID has no trust domain")]
    MissingTrustDomain,
    /// The trust domain is longer than [`MAX_TRUST_DOMAIN_LEN`].
    #[error("trust domain is {len} bytes long, at most {MAX_TRUST_DOMAIN_LEN} allowed")]
    TrustDomainTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The trust domain carries a port (`:`).
    #[error("trust domain must not contain a port")]
    Port,
    /// The trust domain carries user info (`@`).
    #[error("trust domain must not contain user info")]
    UserInfo,
    /// A character outside `a-z 0-9 . - _` in the trust domain.
    #[error(
        "trust domain has invalid character {ch:?} at byte {at}: only lower-case letters, digits, '.', '-' and '_' are allowed"
    )]
    BadTrustDomainChar {
        /// The offending character.
        ch: char,
        /// Its byte offset in the input.
        at: usize,
    },
    /// The ID has a query (`?`).
    #[error("SPIFFE ID must not contain a query")]
    Query,
    /// The ID has a fragment (`#`).
    #[error("SPIFFE ID must not contain a fragment")]
    Fragment,
    /// A character outside `A-Z a-z 0-9 . - _` in a path segment.
    #[error(
        "path has invalid character {ch:?} at byte {at}: only letters, digits, '.', '-' and '_' are allowed"
    )]
    BadPathChar {
        /// The offending character.
        ch: char,
        /// Its byte offset in the input.
        at: usize,
    },
    /// Two `/` in a row, or a trailing `/`.
    #[error("path has an empty segment (\"//\" or a trailing '/')")]
    EmptySegment,
    /// A `.` or `..` segment.
    #[error("path has a '.' or '..' segment")]
    DotSegment,
    /// The whole ID is longer than [`MAX_ID_LEN`].
    #[error("SPIFFE ID is {len} bytes long, at most {MAX_ID_LEN} allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
}

/// A valid SPIFFE ID, e.g. `spiffe://mesh.local/ns/default/svc/news-service`.
///
/// Stored as its one canonical string; accessors borrow from it. Equality and
/// hashing are those of the string (parsing does not normalise: upper case in
/// the trust domain is refused, not folded).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    id: Box<str>,
    /// Byte offset where the path starts (= end of the trust domain).
    path_start: usize,
}

/// A service named by a SPIFFE ID of the form `/ns/<namespace>/svc/<service>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceIdentity<'a> {
    /// The namespace (`default` unless given).
    pub namespace: &'a str,
    /// The service name.
    pub service: &'a str,
}

// === impl SpiffeId ===

impl SpiffeId {
    /// Parses `s`, refusing anything that is not a valid SPIFFE ID.
    pub fn parse(s: &str) -> Result<Self, SpiffeIdError> {
        if s.is_empty() {
            return Err(SpiffeIdError::Empty);
        }
        if s.len() > MAX_ID_LEN {
            return Err(SpiffeIdError::TooLong { len: s.len() });
        }
        let rest = s
            .strip_prefix(SCHEME_PREFIX)
            .ok_or(SpiffeIdError::WrongScheme)?;
        let td_end = rest.find('/').unwrap_or(rest.len());
        let (td, path) = rest.split_at(td_end);
        validate_trust_domain_at(td, SCHEME_PREFIX.len())?;
        validate_path_at(path, SCHEME_PREFIX.len() + td_end)?;
        Ok(Self {
            id: s.into(),
            path_start: SCHEME_PREFIX.len() + td_end,
        })
    }

    /// The ID of service `service` in `namespace` of `trust_domain`:
    /// `spiffe://<trust_domain>/ns/<namespace>/svc/<service>`. Each part is
    /// validated (a namespace or service must be one path segment).
    pub fn for_service(
        trust_domain: &str,
        namespace: &str,
        service: &str,
    ) -> Result<Self, SpiffeIdError> {
        validate_trust_domain(trust_domain)?;
        validate_segment(namespace)?;
        validate_segment(service)?;
        Self::parse(&format!(
            "{SCHEME_PREFIX}{trust_domain}/ns/{namespace}/svc/{service}"
        ))
    }

    /// The trust domain, e.g. `mesh.local`.
    pub fn trust_domain(&self) -> &str {
        self.id
            .get(SCHEME_PREFIX.len()..self.path_start)
            .unwrap_or_default()
    }

    /// The path, e.g. `/ns/default/svc/news-service` (empty for the ID of a
    /// trust domain itself).
    pub fn path(&self) -> &str {
        self.id.get(self.path_start..).unwrap_or_default()
    }

    /// The whole ID as a string.
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// The service this ID names, when its path is exactly
    /// `/ns/<namespace>/svc/<service>`; `None` for any other path.
    pub fn service_identity(&self) -> Option<ServiceIdentity<'_>> {
        let rest = self.path().strip_prefix("/ns/")?;
        let (namespace, rest) = rest.split_once('/')?;
        let service = rest.strip_prefix("svc/")?;
        if service.contains('/') {
            return None;
        }
        Some(ServiceIdentity { namespace, service })
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for SpiffeId {
    fn as_ref(&self) -> &str {
        &self.id
    }
}

impl serde::Serialize for SpiffeId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.id)
    }
}

impl<'de> serde::Deserialize<'de> for SpiffeId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ServiceIdentity<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.service)
    }
}

// === validation ===

/// Checks that `td` is a valid trust domain name (e.g. `mesh.local`).
pub fn validate_trust_domain(td: &str) -> Result<(), SpiffeIdError> {
    validate_trust_domain_at(td, 0)
}

/// Checks that `seg` is one valid path segment (e.g. a namespace or service
/// name): non-empty, not `.`/`..`, of `A-Z a-z 0-9 . - _`.
pub fn validate_segment(seg: &str) -> Result<(), SpiffeIdError> {
    for (at, ch) in seg.char_indices() {
        match ch {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' => {}
            '?' => return Err(SpiffeIdError::Query),
            '#' => return Err(SpiffeIdError::Fragment),
            _ => return Err(SpiffeIdError::BadPathChar { ch, at }),
        }
    }
    check_segment(seg)
}

fn validate_trust_domain_at(td: &str, offset: usize) -> Result<(), SpiffeIdError> {
    if td.is_empty() {
        return Err(SpiffeIdError::MissingTrustDomain);
    }
    if td.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(SpiffeIdError::TrustDomainTooLong { len: td.len() });
    }
    for (i, ch) in td.char_indices() {
        match ch {
            'a'..='z' | '0'..='9' | '.' | '-' | '_' => {}
            ':' => return Err(SpiffeIdError::Port),
            '@' => return Err(SpiffeIdError::UserInfo),
            '?' => return Err(SpiffeIdError::Query),
            '#' => return Err(SpiffeIdError::Fragment),
            _ => {
                return Err(SpiffeIdError::BadTrustDomainChar { ch, at: offset + i });
            }
        }
    }
    Ok(())
}

/// `path` is empty or starts with '/'.
fn validate_path_at(path: &str, offset: usize) -> Result<(), SpiffeIdError> {
    if path.is_empty() {
        return Ok(());
    }
    let mut seg_start = 0;
    for (i, ch) in path.char_indices() {
        match ch {
            '/' => {
                if i > 0 {
                    check_segment(path.get(seg_start..i).unwrap_or_default())?;
                }
                seg_start = i + 1;
            }
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' => {}
            '?' => return Err(SpiffeIdError::Query),
            '#' => return Err(SpiffeIdError::Fragment),
            _ => {
                return Err(SpiffeIdError::BadPathChar { ch, at: offset + i });
            }
        }
    }
    check_segment(path.get(seg_start..).unwrap_or_default())
}

fn check_segment(seg: &str) -> Result<(), SpiffeIdError> {
    match seg {
        "" => Err(SpiffeIdError::EmptySegment),
        "." | ".." => Err(SpiffeIdError::DotSegment),
        _ => Ok(()),
    }
}
