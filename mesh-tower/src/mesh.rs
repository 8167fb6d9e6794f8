//! [`Mesh`]: the entry point. One per process; hands out a [`MeshClient`]
//! per upstream service.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mesh_core::config::{ConfigErrors, MeshEnv, TraceMode};
use mesh_core::{Endpoint, MeshConfig};
use mesh_discovery::{Discover, DiscoveryError, DnsConfig, FileOptions, FileSource, Resolver};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::balance::DEFAULT_WAIT_FOR_ENDPOINTS;
use crate::client::MeshClient;
use crate::connect::{ConnectConfig, Connector};
use crate::metrics::Metrics;
use crate::metrics::prometheus::{self, MetricsError, Telemetry};
use crate::service::{ServiceError, ServiceState, service_config};
use crate::tls::{MeshAcceptor, Tls, TlsConfig, TlsError};
use mesh_core::config::Protocol;
use mesh_core::identity::SpiffeId;
use std::net::SocketAddr;

/// The mesh could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// A mesh environment variable is invalid.
    #[error("mesh environment: {0}")]
    Env(#[source] ConfigErrors),
    /// The config file could not be opened or loaded.
    #[error("mesh config: {0}")]
    Discovery(#[from] DiscoveryError),
    /// The Prometheus `/metrics` pipeline could not be set up.
    #[error("metrics: {0}")]
    Metrics(#[from] MetricsError),
    /// The TLS material could not be loaded (`MESH_TLS_*`).
    #[error("mTLS: {0}")]
    Tls(#[from] TlsError),
    /// Under mTLS, a service's expected SPIFFE ID cannot be formed from
    /// its name (e.g. a target URI): set its `identity` in the config.
    #[error("service `{service}`: no SPIFFE ID to expect (set the service's `identity`): {source}")]
    Identity {
        /// The service.
        service: String,
        /// Why its name is no SPIFFE path segment.
        #[source]
        source: mesh_core::identity::SpiffeIdError,
    },
    /// A service's config could not be compiled.
    #[error("service `{service}`: {source}")]
    Service {
        /// The service.
        service: String,
        /// Why.
        #[source]
        source: ServiceError,
    },
}

/// The proxyless mesh inside this process: config, discovery and one shared
/// state per upstream service (see the [crate docs](crate)).
///
/// Cheap to clone. Build it with [`Mesh::builder`] or [`Mesh::from_env`],
/// then call [`client`](Mesh::client) per upstream service. Background tasks
/// (one per service: discovery, config, outlier detection) end once the
/// `Mesh` and every client of that service are dropped.
#[derive(Clone)]
pub struct Mesh {
    inner: Arc<MeshInner>,
}

struct MeshInner {
    resources: Arc<Resources>,
    services: Mutex<HashMap<String, Arc<ServiceState>>>,
}

/// What clients keep alive: the config channel and its file watcher.
pub(crate) struct Resources {
    pub(crate) config: watch::Receiver<Arc<MeshConfig>>,
    discover: Arc<dyn Discover>,
    wait: Duration,
    http1: Connector,
    http2: Connector,
    connect: ConnectConfig,
    tls: Option<Tls>,
    /// mTLS connectors by (HTTP/2?, expected identity): one pool each.
    tls_connectors: Mutex<HashMap<(bool, SpiffeId), Connector>>,
    pub(crate) local_service: Option<String>,
    /// What clients do with trace context.
    pub(crate) trace: TraceMode,
    metrics: Metrics,
    telemetry: Option<Telemetry>,
    _file: Option<FileSource>,
    _config_tx: Option<watch::Sender<Arc<MeshConfig>>>,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh")
            .field("local_service", &self.inner.resources.local_service)
            .field(
                "services",
                &self.inner.services.lock().keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Builds a [`Mesh`].
#[must_use]
pub struct MeshBuilder {
    config: Option<MeshConfig>,
    config_updates: Option<watch::Receiver<Arc<MeshConfig>>>,
    config_file: Option<PathBuf>,
    endpoints: BTreeMap<String, Vec<Endpoint>>,
    dns: DnsConfig,
    discover: Option<Arc<dyn Discover>>,
    wait: Duration,
    connect: ConnectConfig,
    local_service: Option<String>,
    metrics: Option<Metrics>,
    metrics_addr: Option<SocketAddr>,
    tls: Option<Tls>,
    tls_config: Option<Result<TlsConfig, TlsError>>,
    trace: TraceMode,
}

impl std::fmt::Debug for MeshBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshBuilder").finish_non_exhaustive()
    }
}

impl MeshBuilder {
    /// A fixed config (services, routes, policies, static endpoints).
    pub fn config(mut self, config: MeshConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// A live config: each new value applies to every service at once.
    pub fn config_updates(mut self, config: watch::Receiver<Arc<MeshConfig>>) -> Self {
        self.config_updates = Some(config);
        self
    }

    /// A config file, loaded now and watched (a bad edit keeps the last
    /// good config). Needs a tokio runtime at [`build`](Self::build).
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_file = Some(path.into());
        self
    }

    /// Static endpoints for `service`, as `MESH_ENDPOINTS_<SVC>` gives them
    /// (used when the config does not list the service's endpoints).
    pub fn endpoints(mut self, service: impl Into<String>, endpoints: Vec<Endpoint>) -> Self {
        self.endpoints.insert(service.into(), endpoints);
        self
    }

    /// How DNS names are resolved.
    pub fn dns(mut self, dns: DnsConfig) -> Self {
        self.dns = dns;
        self
    }

    /// Makes every client mTLS with `tls`'s certificate (see
    /// [`crate::tls`]), and [`Mesh::acceptor`] accept in its mode.
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self.tls_config = None;
        self
    }

    /// Like [`tls`](Self::tls), loading `config` at [`build`](Self::build).
    pub fn tls_config(mut self, config: TlsConfig) -> Self {
        self.tls = None;
        self.tls_config = Some(Ok(config));
        self
    }

    /// Everything the environment gives: `MESH_CONFIG`,
    /// `MESH_ENDPOINTS_*`, `MESH_DNS_SERVER`, `MESH_SERVICE`,
    /// `MESH_METRICS_ADDR`, `MESH_TRACE`, and `MESH_TLS_CERT`/`KEY`/`CA`/`MODE` (mTLS,
    /// loaded at [`build`](Self::build); only some of the three files set
    /// is a build error).
    pub fn env(mut self, env: &MeshEnv) -> Self {
        match TlsConfig::from_env(env) {
            Ok(None) => {}
            Ok(Some(c)) => {
                self.tls = None;
                self.tls_config = Some(Ok(c));
            }
            Err(e) => self.tls_config = Some(Err(e)),
        }
        if let Some(path) = &env.config_path {
            self.config_file = Some(path.clone());
        }
        for (service, eps) in &env.endpoints {
            self.endpoints.insert(service.clone(), eps.clone());
        }
        if let Some(server) = env.dns_server {
            self.dns.server = Some(server);
        }
        if let Some(mode) = env.trace {
            self.trace = mode;
        }
        if let Some(addr) = env.metrics_addr {
            self.metrics_addr = Some(addr);
        }
        if env.service.is_some() {
            self.local_service = env.service.clone();
        }
        self
    }

    /// Discovers endpoints from `discover` instead of the config, the
    /// static endpoints and DNS.
    pub fn discover(mut self, discover: impl Discover + 'static) -> Self {
        self.discover = Some(Arc::new(discover));
        self
    }

    /// How long a request waits for a service's first endpoints before
    /// failing with [`NoEndpoints`](crate::error::NoEndpoints) (default 2s).
    pub fn wait_for_endpoints(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Connect timeout and pooling.
    pub fn connect(mut self, connect: ConnectConfig) -> Self {
        self.connect = connect;
        self
    }

    /// What clients do with W3C trace context (`MESH_TRACE`; default
    /// [`TraceMode::Propagate`]: a call carries a `traceparent` when its
    /// caller has a trace context, and no new trace starts).
    pub fn trace(mut self, mode: TraceMode) -> Self {
        self.trace = mode;
        self
    }

    /// This service's own name (metrics).
    pub fn local_service(mut self, name: impl Into<String>) -> Self {
        self.local_service = Some(name.into());
        self
    }

    /// Records golden signals with `metrics` (default:
    /// [`Metrics::global`] at [`build`](Self::build), a no-op unless a
    /// provider was installed).
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Records golden signals and the authorization counters
    /// ([`Mesh::authz_layer`]) on `meter` (overriding
    /// [`metrics`](Self::metrics)).
    pub fn meter(mut self, meter: &opentelemetry::metrics::Meter) -> Self {
        self.metrics = Some(Metrics::new(meter));
        self
    }

    /// Serves Prometheus `GET /metrics` on `addr` (`MESH_METRICS_ADDR`):
    /// [`build`](Self::build) installs the [Prometheus
    /// pipeline](crate::metrics::prometheus) as the global meter provider
    /// and records into it (overriding [`metrics`](Self::metrics)). Needs a
    /// tokio runtime.
    pub fn metrics_addr(mut self, addr: SocketAddr) -> Self {
        self.metrics_addr = Some(addr);
        self
    }

    /// Builds the mesh. Opens the config file, if any (inside a tokio
    /// runtime); discovery starts per service, lazily.
    pub fn build(self) -> Result<Mesh, MeshError> {
        let tls = match self.tls_config {
            Some(config) => Some(Tls::load(config?)?),
            None => self.tls,
        };
        let mut file = None;
        let mut config_tx = None;
        let config = if let Some(path) = self.config_file {
            let source = FileSource::open(
                path,
                FileOptions {
                    dns: self.dns.clone(),
                    ..FileOptions::default()
                },
            )?;
            let rx = source.subscribe();
            file = Some(source);
            rx
        } else if let Some(rx) = self.config_updates {
            rx
        } else {
            let (tx, rx) = watch::channel(Arc::new(self.config.unwrap_or_default()));
            config_tx = Some(tx);
            rx
        };
        let discover = match self.discover {
            Some(d) => d,
            None => Arc::new(
                Resolver::new(self.dns)
                    .with_env_endpoints(self.endpoints)
                    .with_config_updates(config.clone()),
            ),
        };
        let (metrics, telemetry) = match self.metrics_addr {
            Some(addr) => {
                let telemetry = serve_metrics(addr, self.local_service.as_deref())?;
                let meter =
                    opentelemetry::metrics::MeterProvider::meter(&telemetry.provider, "mesh-tower");
                (Metrics::new(&meter), Some(telemetry))
            }
            None => (self.metrics.unwrap_or_else(Metrics::global), None),
        };
        if let Some(tls) = &tls {
            tls.register_metrics(metrics.meter());
        }
        Ok(Mesh {
            inner: Arc::new(MeshInner {
                resources: Arc::new(Resources {
                    config,
                    discover,
                    wait: self.wait,
                    http1: Connector::new(Protocol::Http, &self.connect),
                    http2: Connector::new(Protocol::Http2, &self.connect),
                    connect: self.connect,
                    tls,
                    tls_connectors: Mutex::new(HashMap::new()),
                    local_service: self.local_service,
                    trace: self.trace,
                    metrics,
                    telemetry,
                    _file: file,
                    _config_tx: config_tx,
                }),
                services: Mutex::new(HashMap::new()),
            }),
        })
    }
}

/// Installs the Prometheus pipeline globally and serves it on `addr`.
fn serve_metrics(addr: SocketAddr, service: Option<&str>) -> Result<Telemetry, MeshError> {
    let (provider, exposition) = prometheus::pipeline(service)?;
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .and_then(tokio::net::TcpListener::from_std)
        .map_err(|source| MeshError::Metrics(MetricsError::Bind { addr, source }))?;
    let server = prometheus::serve(listener, exposition.clone())?;
    opentelemetry::global::set_meter_provider(provider.clone());
    Ok(Telemetry {
        provider,
        server,
        exposition,
    })
}

impl Mesh {
    /// A builder with no config, no static endpoints and the system's DNS.
    pub fn builder() -> MeshBuilder {
        MeshBuilder {
            config: None,
            config_updates: None,
            config_file: None,
            endpoints: BTreeMap::new(),
            dns: DnsConfig::default(),
            discover: None,
            wait: DEFAULT_WAIT_FOR_ENDPOINTS,
            connect: ConnectConfig::default(),
            local_service: None,
            metrics: None,
            metrics_addr: None,
            tls: None,
            tls_config: None,
            trace: TraceMode::default(),
        }
    }

    /// The mesh this process's environment describes (DESIGN.md's
    /// environment contract): `MESH_CONFIG` (loaded and watched),
    /// `MESH_ENDPOINTS_<SVC>`, `MESH_DNS_SERVER`, `MESH_SERVICE`, and
    /// `MESH_METRICS_ADDR` (Prometheus `/metrics` served there, see
    /// [`MeshBuilder::metrics_addr`]). Call it inside a tokio runtime when
    /// `MESH_CONFIG` or `MESH_METRICS_ADDR` is set.
    pub fn from_env() -> Result<Mesh, MeshError> {
        let env = MeshEnv::from_vars_os(std::env::vars_os()).map_err(MeshError::Env)?;
        Mesh::builder().env(&env).build()
    }

    /// The current config.
    pub fn config(&self) -> Arc<MeshConfig> {
        self.inner.resources.config.borrow().clone()
    }

    /// Where Prometheus `/metrics` is served, if it is
    /// ([`MeshBuilder::metrics_addr`], `MESH_METRICS_ADDR`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.inner
            .resources
            .telemetry
            .as_ref()
            .map(|t| t.server.local_addr())
    }

    /// The mTLS material, if the mesh speaks mTLS
    /// ([`MeshBuilder::tls`], `MESH_TLS_*`).
    pub fn tls(&self) -> Option<&Tls> {
        self.inner.resources.tls.as_ref()
    }

    /// A server-side acceptor for this process's servers: in the TLS mode
    /// (`MESH_TLS_MODE`, default strict) with the live certificate, or
    /// plaintext without TLS. Serve with [`crate::tls::serve`] or
    /// [`crate::tls::incoming`].
    pub fn acceptor(&self) -> MeshAcceptor {
        match &self.inner.resources.tls {
            Some(tls) => MeshAcceptor::new(tls),
            None => MeshAcceptor::plaintext(),
        }
    }

    /// The instruments the mesh records into.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.resources.metrics
    }

    /// The authorization layer for this service's server: intentions of the
    /// mesh's config (followed live), destination [`local_service`](Self::local_service),
    /// counters on the mesh's meter (that of [`MeshBuilder::meter`] or
    /// `MESH_METRICS_ADDR`; else the global provider's). See
    /// [`crate::authz`].
    pub fn authz_layer(&self) -> Result<crate::authz::AuthzLayer, crate::authz::AuthzError> {
        let res = &self.inner.resources;
        let service = res
            .local_service
            .as_deref()
            .ok_or(crate::authz::AuthzError::NoLocalService)?;
        let metrics = crate::authz::AuthzMetrics::new(res.metrics.meter());
        crate::authz::AuthzLayer::watch(service, res.config.clone(), metrics)
    }

    /// This service's own name, if known (`MESH_SERVICE`).
    pub fn local_service(&self) -> Option<&str> {
        self.inner.resources.local_service.as_deref()
    }

    /// A client for `service` (a service name, or a target URI such as
    /// `static:///127.0.0.1:8081` or `dns:///news.example.com:8080`).
    ///
    /// Never blocks: discovery starts in the background (inside the tokio
    /// runtime, at once if there is one, else on the first request), and the
    /// first requests wait, bounded, for endpoints. Clients of the same
    /// service share their state (balancers, limits, outlier detection,
    /// retry budget).
    ///
    /// A service whose config cannot be compiled (impossible for a config
    /// that passed validation) yields a client failing every request with
    /// the reason; [`try_client`](Self::try_client) returns it instead.
    pub fn client(&self, service: &str) -> MeshClient {
        match self.try_client(service) {
            Ok(client) => client,
            Err(err) => {
                tracing::error!(service, error = %err, "mesh client cannot be built");
                MeshClient::failing(service, err)
            }
        }
    }

    /// A client for `service`, or why its config cannot be compiled.
    pub fn try_client(&self, service: &str) -> Result<MeshClient, MeshError> {
        let state = {
            let mut services = self.inner.services.lock();
            match services.get(service) {
                Some(state) => state.clone(),
                None => {
                    let res = &self.inner.resources;
                    // The client stack's connector (mTLS included): health
                    // probes go through it too.
                    let protocol = service_config(&res.config.borrow(), service).protocol;
                    let (connector, identity) = res.following_connector(service, protocol)?;
                    let state = ServiceState::new(
                        service,
                        res.config.clone(),
                        res.discover.clone(),
                        res.wait,
                        res.metrics.clone(),
                        connector,
                        identity,
                    )
                    .map_err(|source| MeshError::Service {
                        service: service.to_string(),
                        source,
                    })?;
                    let state = Arc::new(state);
                    services.insert(service.to_string(), state.clone());
                    state
                }
            }
        };
        let connector = state.connector.clone();
        state.pool.start();
        Ok(MeshClient::new(
            state,
            self.inner.resources.clone(),
            connector,
        ))
    }
}

impl Resources {
    /// The connector for `service` under `config`: plaintext, or mTLS
    /// expecting the service's identity (config `identity`, else
    /// `spiffe://<trust_domain>/ns/default/svc/<service>`), shared by every
    /// service expecting the same identity over the same protocol; with the
    /// identity it expects (`None`: plaintext).
    fn connector_for(
        &self,
        config: &MeshConfig,
        service: &str,
        protocol: Protocol,
    ) -> Result<(Option<SpiffeId>, Connector), MeshError> {
        let h2 = matches!(protocol, Protocol::Http2 | Protocol::Grpc);
        let Some(tls) = &self.tls else {
            return Ok((
                None,
                if h2 {
                    self.http2.clone()
                } else {
                    self.http1.clone()
                },
            ));
        };
        let expected = expected_identity(config, service)?;
        let mut connectors = self.tls_connectors.lock();
        if let Some(c) = connectors.get(&(h2, expected.clone())) {
            return Ok((Some(expected), c.clone()));
        }
        let connector = Connector::tls(protocol, &self.connect, tls, expected.clone())?;
        connectors.insert((h2, expected.clone()), connector.clone());
        Ok((Some(expected), connector))
    }

    /// A service's connector that follows config: with mTLS, a change of the
    /// identity the service is expected to present (its `identity`, or the
    /// trust domain behind the default one) swaps the connector under every
    /// client of the service; new connections verify the new identity.
    fn following_connector(
        self: &Arc<Self>,
        service: &str,
        protocol: Protocol,
    ) -> Result<(Connector, Option<crate::service::IdentityFollow>), MeshError> {
        let config = Arc::clone(&self.config.borrow());
        let (expected, connector) = self.connector_for(&config, service, protocol)?;
        let Some(expected) = expected else {
            return Ok((connector, None));
        };
        let (live, slot) = Connector::live(connector);
        let res = Arc::clone(self);
        let name = service.to_string();
        let follow = crate::service::IdentityFollow {
            expected,
            slot,
            make: Box::new(move |mesh: &MeshConfig| {
                res.connector_for(mesh, &name, protocol)
                    .map_err(|e| e.to_string())
            }),
        };
        Ok((live, Some(follow)))
    }
}

/// The SPIFFE ID `service` must present under `config`.
fn expected_identity(config: &MeshConfig, service: &str) -> Result<SpiffeId, MeshError> {
    match config
        .services
        .get(service)
        .and_then(|s| s.identity.clone())
    {
        Some(id) => Ok(id),
        None => SpiffeId::for_service(&config.trust_domain, "default", service).map_err(|source| {
            MeshError::Identity {
                service: service.to_string(),
                source,
            }
        }),
    }
}
