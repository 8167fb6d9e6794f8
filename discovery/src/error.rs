//! Errors of discovery: small typed leaves, wrapped with context, the cause
//! chain kept (`std::error::Error::source`).

use crate::dns::DnsError;
use crate::target::TargetError;

/// Why a source could not watch or resolve a service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The target string is not a valid target.
    #[error("invalid target")]
    Target(#[from] TargetError),
    /// The source has no endpoints configured for this service.
    #[error("no endpoints known for service `{0}` in this source")]
    UnknownService(String),
    /// The target needs a feature that is not built yet.
    #[error("`{scheme}:///` targets are not supported yet: they need the {feature}")]
    Unsupported {
        /// The URI scheme (`xds`, `k8s`).
        scheme: &'static str,
        /// The feature that will resolve it.
        feature: &'static str,
    },
    /// DNS resolution failed.
    #[error("DNS resolution failed")]
    Dns(#[from] DnsError),
    /// The config file could not be watched or read.
    #[error("config file `{path}`")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        #[source]
        source: crate::file::FileError,
    },
}

/// `error: cause: cause` on one line, for logs.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
