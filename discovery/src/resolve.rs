//! Resolving a target: the documented order of sources.
//!
//! For a **service name** the first source that knows it wins:
//!
//! 1. the control plane (xDS): not built yet, so never consulted here
//!    ([`Resolver::from_env`] logs a warning when `MESH_CONTROL_PLANE` or a
//!    bootstrap file is set);
//! 2. the config file: `services.<name>.endpoints` (static), or else
//!    `services.<name>.dns` (a DNS target);
//! 3. `MESH_ENDPOINTS_<SVC>` (upper case, `-` -> `_`);
//! 4. DNS of the name itself, A/AAAA, with the service's default port:
//!    **80** for `http` and `http2` (plain HTTP's port), **443** for `grpc`
//!    (what gRPC's own `dns:///` resolver assumes without a port). A service
//!    absent from the config counts as `http`.
//!
//! An explicit [`Target`] URI bypasses the order: `static:///` and `dns:///`
//! resolve directly; `xds:///` and `k8s:///` return
//! [`DiscoveryError::Unsupported`], naming the feature that will resolve them.
//!
//! With a live config ([`Resolver::with_config_updates`], e.g. from
//! [`FileSource::subscribe`](crate::file::FileSource::subscribe)), a watch
//! re-plans on every config change: when the service's source changes (new
//! static endpoints, another DNS name, removed from the file), the stream
//! switches to the new source, whose first update is a `Reset` (or
//! `DoesNotExist`). Until the new source answers, the consumer keeps the set it
//! has (fail static).

use std::collections::BTreeMap;
use std::sync::Arc;

use mesh_core::config::{DnsTarget, MeshEnv, Protocol};
use mesh_core::{Endpoint, MeshConfig};
use tokio::sync::watch;

use crate::dns::{DnsConfig, DnsSource};
use crate::error::DiscoveryError;
use crate::file::{FileOptions, FileSource};
use crate::follow::{DnsCell, follow, plan_stream};
use crate::target::Target;
use crate::update::{UpdateStream, normalize};

/// Port used for DNS of a bare `http`/`http2` service name.
pub const DEFAULT_HTTP_PORT: u16 = 80;
/// Port used for DNS of a bare `grpc` service name.
pub const DEFAULT_GRPC_PORT: u16 = 443;

/// Which source answered for a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The config file (`services.<name>`).
    Config,
    /// `MESH_ENDPOINTS_<SVC>`.
    Env,
    /// DNS of the service name itself (the last resort).
    NameDns,
    /// An explicit target URI.
    Uri,
}

impl Origin {
    /// A short name: `config`, `env`, `dns-name`, `uri`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Config => "config",
            Origin::Env => "env",
            Origin::NameDns => "dns-name",
            Origin::Uri => "uri",
        }
    }
}

/// How a target will be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Fixed endpoints.
    Static {
        /// Where they come from.
        origin: Origin,
        /// The endpoints, sorted by address.
        endpoints: Vec<Endpoint>,
    },
    /// A DNS name.
    Dns {
        /// Where the name comes from.
        origin: Origin,
        /// The name.
        target: DnsTarget,
    },
}

impl Plan {
    /// Where the plan comes from.
    pub fn origin(&self) -> Origin {
        match self {
            Plan::Static { origin, .. } | Plan::Dns { origin, .. } => *origin,
        }
    }
}

/// One resolution: the plan that was followed and the endpoints it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// How the target was resolved.
    pub plan: Plan,
    /// The endpoints, sorted by address.
    pub endpoints: Vec<Endpoint>,
}

/// Resolves targets through config, `MESH_ENDPOINTS_*` and DNS, in order.
pub struct Resolver {
    /// The watched `MESH_CONFIG` file, when [`Resolver::from_env`] opened it.
    file: Option<Arc<FileSource>>,
    config: Option<watch::Receiver<Arc<MeshConfig>>>,
    env_endpoints: Arc<BTreeMap<String, Vec<Endpoint>>>,
    dns: DnsCell,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("has_config", &self.config.is_some())
            .field(
                "env_services",
                &self.env_endpoints.keys().collect::<Vec<_>>(),
            )
            .field("dns", self.dns.config())
            .finish()
    }
}

/// `news-service` -> `NEWS_SERVICE`: the `<SVC>` of `MESH_ENDPOINTS_<SVC>`.
pub fn env_key(service: &str) -> String {
    service
        .chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

impl Resolver {
    /// A resolver with no config and no env endpoints: only DNS of the name
    /// and explicit URIs.
    pub fn new(dns: DnsConfig) -> Self {
        Self {
            file: None,
            config: None,
            env_endpoints: Arc::new(BTreeMap::new()),
            dns: DnsCell::new(dns),
        }
    }

    /// A resolver for this process's environment: `MESH_ENDPOINTS_*`,
    /// `MESH_DNS_SERVER` (overriding `dns.server`), and the `MESH_CONFIG`
    /// file, opened and watched (so it needs a tokio runtime, and fails if the
    /// file does not load: there is no last good config yet).
    pub fn from_env(env: &MeshEnv, mut dns: DnsConfig) -> Result<Self, DiscoveryError> {
        if let Some(server) = env.dns_server {
            dns.server = Some(server);
        }
        if env.control_plane.is_some() || env.xds_bootstrap.is_some() {
            tracing::warn!(
                "a control plane is configured but the xDS client is not built yet; \
                 resolving from the config file, MESH_ENDPOINTS_* and DNS"
            );
        }
        let mut r = Resolver::new(dns.clone()).with_env_endpoints(env.endpoints.clone());
        if let Some(path) = &env.config_path {
            let file = FileSource::open(
                path,
                FileOptions {
                    dns,
                    ..FileOptions::default()
                },
            )?;
            r.config = Some(file.subscribe());
            r.file = Some(Arc::new(file));
        }
        Ok(r)
    }

    /// The watched config file, if this resolver opened one
    /// ([`FileSource::last_error`] tells whether its last edit was rejected).
    pub fn file(&self) -> Option<&FileSource> {
        self.file.as_deref()
    }

    /// The same resolver with a fixed config.
    pub fn with_config(self, config: MeshConfig) -> Self {
        let (_tx, rx) = watch::channel(Arc::new(config));
        self.with_config_updates(rx)
    }

    /// The same resolver following a live config (e.g.
    /// [`FileSource::subscribe`](crate::file::FileSource::subscribe)).
    pub fn with_config_updates(mut self, config: watch::Receiver<Arc<MeshConfig>>) -> Self {
        self.config = Some(config);
        self
    }

    /// The same resolver with `MESH_ENDPOINTS_<SVC>` endpoints, keyed by
    /// service name or by `<SVC>` (compared through [`env_key`]).
    pub fn with_env_endpoints(mut self, endpoints: BTreeMap<String, Vec<Endpoint>>) -> Self {
        self.env_endpoints = Arc::new(
            endpoints
                .into_iter()
                .map(|(k, v)| (env_key(&k), normalize(v)))
                .collect(),
        );
        self
    }

    /// The DNS source, built on first use.
    pub fn dns(&self) -> Result<DnsSource, DiscoveryError> {
        self.dns.get()
    }

    /// How `target` resolves now (with the current config).
    pub fn plan(&self, target: &Target) -> Result<Plan, DiscoveryError> {
        match target {
            Target::Service(name) => {
                let config = self.config.as_ref().map(|rx| rx.borrow().clone());
                Ok(plan_service(config.as_deref(), &self.env_endpoints, name))
            }
            Target::Static(eps) => Ok(Plan::Static {
                origin: Origin::Uri,
                endpoints: normalize(eps.clone()),
            }),
            Target::Dns(t) => Ok(Plan::Dns {
                origin: Origin::Uri,
                target: t.clone(),
            }),
            Target::Xds(_) => Err(DiscoveryError::Unsupported {
                scheme: "xds",
                feature: "xDS client (issue \"xDS client\"), not built yet",
            }),
            Target::K8s { .. } => Err(DiscoveryError::Unsupported {
                scheme: "k8s",
                feature: "Kubernetes source (feature `kubernetes`), not built yet",
            }),
        }
    }

    /// Resolves `target` (a [`Target`] string) once.
    pub async fn resolve_once(&self, target: &str) -> Result<Resolution, DiscoveryError> {
        let plan = self.plan(&Target::parse(target)?)?;
        let endpoints = match &plan {
            Plan::Static { endpoints, .. } => endpoints.clone(),
            Plan::Dns { target, .. } => self.dns()?.resolve(target).await?.endpoints,
        };
        Ok(Resolution { plan, endpoints })
    }

    /// Watches `target` (a [`Target`] string): a stream of updates that
    /// follows config changes for service names (see the module docs).
    pub fn watch(&self, target: &str) -> Result<UpdateStream, DiscoveryError> {
        let target = Target::parse(target)?;
        match (&target, &self.config) {
            (Target::Service(name), Some(rx)) => {
                let env = self.env_endpoints.clone();
                let service = name.clone();
                // The stream keeps the file watched as long as it lives.
                let file = self.file.clone();
                follow(
                    rx.clone(),
                    move |c| {
                        let _watching = &file;
                        Some(plan_service(Some(c), &env, &service))
                    },
                    self.dns.clone(),
                    name.clone(),
                )
            }
            _ => plan_stream(Some(&self.plan(&target)?), &self.dns),
        }
    }
}

impl crate::source::Discover for Resolver {
    fn watch(&self, service: &str) -> Result<UpdateStream, DiscoveryError> {
        Resolver::watch(self, service)
    }
}

/// The resolution order for a service name (see the module docs).
pub fn plan_service(
    config: Option<&MeshConfig>,
    env_endpoints: &BTreeMap<String, Vec<Endpoint>>,
    name: &str,
) -> Plan {
    let service = config.and_then(|c| c.services.get(name));
    if let Some(svc) = service {
        if !svc.endpoints.is_empty() {
            return Plan::Static {
                origin: Origin::Config,
                endpoints: normalize(svc.endpoints.clone()),
            };
        }
        if let Some(dns) = &svc.dns {
            return Plan::Dns {
                origin: Origin::Config,
                target: dns.clone(),
            };
        }
    }
    if let Some(eps) = env_endpoints.get(&env_key(name)) {
        return Plan::Static {
            origin: Origin::Env,
            endpoints: eps.clone(),
        };
    }
    let port = match service.map(|s| s.protocol).unwrap_or_default() {
        Protocol::Http | Protocol::Http2 => DEFAULT_HTTP_PORT,
        Protocol::Grpc => DEFAULT_GRPC_PORT,
    };
    Plan::Dns {
        origin: Origin::NameDns,
        target: DnsTarget::Host {
            host: name.to_string(),
            port,
        },
    }
}

/// Resolves `target` once for this environment (what `meshctl resolve`
/// does): [`Resolver::from_env`] with the default [`DnsConfig`], then
/// [`Resolver::resolve_once`].
pub async fn resolve_once(target: &str, env: &MeshEnv) -> Result<Resolution, DiscoveryError> {
    Resolver::from_env(env, DnsConfig::default())?
        .resolve_once(target)
        .await
}

/// Watches `target` for this environment (what `meshctl resolve --watch`
/// does). The stream owns what it needs (the watched config file included).
pub fn watch(target: &str, env: &MeshEnv) -> Result<UpdateStream, DiscoveryError> {
    Resolver::from_env(env, DnsConfig::default())?.watch(target)
}

#[cfg(test)]
mod tests;
