//! DNS discovery with hickory-resolver: A/AAAA for `host:port`, SRV for
//! `_service._proto.name`.
//!
//! ## Resolution
//!
//! - **Host** (`news.example.com:8080`): every A and AAAA address of the
//!   host, each with the given port and weight 1.
//! - **SRV** (`_http._tcp.news.example.com`): the SRV records of the lowest
//!   priority value only (RFC 2782: higher priority values are fallbacks, used
//!   by nobody while the lowest group answers); each record's target is
//!   resolved to its A/AAAA addresses, which get the record's port and weight
//!   (weight 0 becomes 1, the smallest share we can express; weights are
//!   clamped to [`MAX_WEIGHT`](mesh_core::endpoint::MAX_WEIGHT)). A target that
//!   does not resolve is skipped with a warning; if none resolves, the answer
//!   is an error. The target `.` ("service decidedly not available") yields no
//!   endpoints.
//!
//! ## Watching: TTL, floor and ceiling, fail static
//!
//! A watch re-resolves when the answer's smallest TTL runs out, clamped to
//! [`DnsConfig::min_ttl`] (so a TTL of 0 does not turn into a query storm)
//! and [`DnsConfig::max_ttl`] (so a long TTL still notices changes).
//!
//! The first answer is a [`Reset`](crate::Update::Reset) (or
//! [`DoesNotExist`](crate::Update::DoesNotExist) on `NXDOMAIN`); afterwards
//! only changes are emitted, as the [`diff`](crate::update::diff) of the old
//! and new sets. Errors never empty a known set: on a timeout, a dead
//! resolver, a weird answer, or even an `NXDOMAIN` after a good answer, the
//! last good set is kept (fail static), a warning is logged, and resolution is
//! retried with exponential backoff from `min_ttl` up to `max_ttl`.
//!
//! The resolver is the one at [`DnsConfig::server`] (`MESH_DNS_SERVER`),
//! over UDP with TCP fallback, or the system's (`/etc/resolv.conf`).

mod resolve;
mod srv;
mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use mesh_core::Endpoint;
use mesh_core::config::DnsTarget;

use crate::error::DiscoveryError;
use crate::source::Discover;
use crate::target::parse_dns_target;
use crate::update::UpdateStream;

pub use srv::{SrvRecord, select_srv};

/// Default floor of the re-resolution interval.
pub const DEFAULT_MIN_TTL: Duration = Duration::from_secs(5);
/// Default ceiling of the re-resolution interval.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(300);
/// Default timeout of one resolution.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How DNS discovery resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// The resolver's `ip:port` (`MESH_DNS_SERVER`); `None`: the system's.
    pub server: Option<SocketAddr>,
    /// Never re-resolve sooner than this, whatever the TTL (default 5s).
    pub min_ttl: Duration,
    /// Never re-resolve later than this, whatever the TTL (default 300s).
    pub max_ttl: Duration,
    /// Give up one resolution after this long (default 5s).
    pub timeout: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            server: None,
            min_ttl: DEFAULT_MIN_TTL,
            max_ttl: DEFAULT_MAX_TTL,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl DnsConfig {
    /// The re-resolution delay for an answer with `ttl`: clamped to
    /// `[min_ttl, max_ttl]` (if `max_ttl < min_ttl`, `min_ttl` wins).
    pub fn refresh_after(&self, ttl: Duration) -> Duration {
        ttl.min(self.max_ttl).max(self.min_ttl)
    }
}

/// Why a DNS resolution failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The resolver could not be set up (e.g. no usable `/etc/resolv.conf`).
    #[error("could not set up the DNS resolver")]
    Setup(#[source] NetError),
    /// The name does not exist (`NXDOMAIN`).
    #[error("`{0}` does not exist (NXDOMAIN)")]
    NotFound(String),
    /// The lookup failed (server unreachable, refused, bad response...).
    #[error("looking up `{name}` failed")]
    Lookup {
        /// The name looked up.
        name: String,
        /// The resolver's error.
        #[source]
        source: NetError,
    },
    /// The lookup took longer than [`DnsConfig::timeout`].
    #[error("looking up `{name}` timed out after {timeout:?}")]
    Timeout {
        /// The name looked up.
        name: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The name exists but has no usable records of the asked type.
    #[error("`{0}` has no usable addresses")]
    NoAddresses(String),
    /// The SRV answer had records but none of their targets resolved.
    #[error("none of the SRV targets of `{name}` resolved ({targets} tried)")]
    NoSrvTargets {
        /// The SRV name.
        name: String,
        /// How many targets were tried.
        targets: usize,
    },
}

/// One successful resolution: the endpoints and how long they are valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The endpoints, sorted by address, without duplicate addresses.
    pub endpoints: Vec<Endpoint>,
    /// The smallest TTL of the records used.
    pub ttl: Duration,
}

/// DNS as a discovery source. Cheap to clone (the resolver is shared).
#[derive(Clone)]
pub struct DnsSource {
    inner: Arc<Inner>,
}

struct Inner {
    resolver: TokioResolver,
    config: DnsConfig,
}

impl std::fmt::Debug for DnsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsSource")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl DnsSource {
    /// A source resolving through `config.server`, or the system's resolver.
    pub fn new(config: DnsConfig) -> Result<Self, DnsError> {
        let mut builder = match config.server {
            Some(server) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = server.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = server.port();
                let ns = NameServerConfig::new(server.ip(), true, vec![udp, tcp]);
                let mut b = TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![ns]),
                    TokioRuntimeProvider::default(),
                );
                // A dedicated server answers for everything: no /etc/hosts.
                b.options_mut().use_hosts_file = ResolveHosts::Never;
                b
            }
            None => TokioResolver::builder_tokio().map_err(DnsError::Setup)?,
        };
        let opts = builder.options_mut();
        opts.timeout = config.timeout;
        opts.attempts = 1;
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        // We schedule re-resolution ourselves; the cache must not outlive it.
        opts.positive_max_ttl = Some(config.min_ttl);
        opts.negative_max_ttl = Some(config.min_ttl);
        let resolver = builder.build().map_err(DnsError::Setup)?;
        Ok(Self {
            inner: Arc::new(Inner { resolver, config }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DnsConfig {
        &self.inner.config
    }

    /// Resolves `target` once.
    pub async fn resolve(&self, target: &DnsTarget) -> Result<Resolved, DnsError> {
        let name = match target {
            DnsTarget::Host { host, .. } => host.clone(),
            DnsTarget::Srv { name } => name.clone(),
        };
        let timeout = self.inner.config.timeout;
        match tokio::time::timeout(
            timeout,
            resolve::resolve(&self.inner.resolver, target, self.inner.config.min_ttl),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(DnsError::Timeout { name, timeout }),
        }
    }

    /// A stream of updates for `target` (see the module docs).
    pub fn watch_target(&self, target: DnsTarget) -> UpdateStream {
        watch::watch(self.clone(), target)
    }
}

impl Discover for DnsSource {
    /// `service` is a DNS target: `host:port` or `_service._proto.name`.
    fn watch(&self, service: &str) -> Result<UpdateStream, DiscoveryError> {
        let target = parse_dns_target(service)?;
        Ok(self.watch_target(target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_is_clamped() {
        let c = DnsConfig {
            min_ttl: Duration::from_secs(1),
            max_ttl: Duration::from_secs(60),
            ..DnsConfig::default()
        };
        assert_eq!(c.refresh_after(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(
            c.refresh_after(Duration::from_secs(30)),
            Duration::from_secs(30)
        );
        assert_eq!(
            c.refresh_after(Duration::from_secs(86400)),
            Duration::from_secs(60)
        );
    }
}
