//! Mutual TLS between mesh services, with SPIFFE identities.
//!
//! Every service holds a certificate whose URI SAN is its SPIFFE ID
//! (`spiffe://<trust_domain>/ns/<namespace>/svc/<service>`), issued by the
//! mesh CA (`meshctl certs`, or any PKI). Both sides of every connection
//! present theirs and check the other's against the CA:
//!
//! - **client** ([`connect`](crate::connect)): TLS 1.3 only, ALPN `h2` for
//!   `http2`/`grpc` services and `http/1.1` for `http`, session resumption
//!   on. The server's chain is verified against the CA and its SPIFFE ID
//!   against the destination's *expected identity*
//!   (`spiffe://<trust_domain>/ns/default/svc/<service>` unless the
//!   service's config sets `identity`), not against DNS names or IPs: a
//!   mismatch fails the connection with an [`IdentityMismatch`] naming
//!   both IDs, classified as a connect failure (retried elsewhere, fed to
//!   outlier detection). Pooled connections are never shared between
//!   expected identities (one pool per identity).
//! - **server** ([`MeshAcceptor`]): one of three [`TlsMode`]s:
//!   `strict` (a client certificate from the CA is required), `permissive`
//!   (plaintext and TLS on the same port, told apart by the first byte:
//!   `0x16` opens a TLS handshake, as Istio's PERMISSIVE mode does; a TLS
//!   client may then omit its certificate) and `disabled` (plaintext).
//!   The peer's SPIFFE ID ends up as [`PeerIdentity`](crate::ext::PeerIdentity)
//!   in each request's extensions (`None` for plaintext) before any user
//!   layer runs.
//!
//! ## Material and reload
//!
//! [`TlsConfig`] names three PEM files (`MESH_TLS_CERT`, `MESH_TLS_KEY`,
//! `MESH_TLS_CA`) and the mode (`MESH_TLS_MODE`, default `strict`).
//! [`Tls::load`] reads and checks them: each [`TlsError`] names the file
//! at fault (unreadable, no certificate, no or unsupported key, key not the
//! certificate's, expired, not yet valid, no SPIFFE ID, bad CA). Inside a
//! tokio runtime the files are then polled (every second by default): a
//! change is loaded once the files have stayed the same for one more poll
//! (so a half-written file or a certificate written before its key is not
//! read), and a bad new set is logged and ignored (the old material stays).
//! New handshakes use the new certificate and CA; open connections are
//! untouched. The gauge `mesh.tls.cert.expiry` (seconds until the local
//! certificate expires) is registered by [`Tls::register_metrics`] (the
//! [`Mesh`](crate::Mesh) does it on its meter).
//!
//! ## Crypto provider
//!
//! The whole workspace uses rustls with **ring** only: ring builds with a
//! C compiler alone (aws-lc-rs needs cmake and, for its FIPS build, Go and
//! nasm), compiles in a fraction of the time, and offers every algorithm
//! the mesh needs (ECDSA P-256/P-384, Ed25519, RSA, AES-GCM, ChaCha20).
//! rustls, tokio-rustls and rcgen are built without their `aws_lc_rs`
//! default features, and the provider is passed explicitly
//! ([`provider`]), never installed process-wide.
//!
//! ## Serving
//!
//! axum routers and hyper services: [`serve`] (HTTP/1.1 and h2, graceful
//! shutdown):
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use mesh_tower::ext::PeerIdentity;
//! use mesh_tower::tls::{MeshAcceptor, Tls, TlsConfig, serve};
//!
//! let tls = Tls::load(TlsConfig::new("cert.pem", "key.pem", "ca.pem"))?;
//! let app = axum::Router::new().route(
//!     "/",
//!     axum::routing::get(|axum::Extension(peer): axum::Extension<PeerIdentity>| async move {
//!         format!("hello {:?}", peer.0)
//!     }),
//! );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
//! serve(listener, MeshAcceptor::new(&tls), app, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! tonic servers: [`incoming`] yields handshaken connections for
//! `Server::builder().serve_with_incoming(...)`; tonic puts each
//! connection's [`MeshConnectInfo`] in the request extensions, and
//! [`PeerIdentityLayer`] (`Server::builder().layer(PeerIdentityLayer)`)
//! copies its identity into [`PeerIdentity`](crate::ext::PeerIdentity),
//! which handlers read with `request.extensions().get::<PeerIdentity>()`.
//!
//! Handshake failures are logged at debug level and never stop the accept
//! loop; a handshake (or the first byte, in permissive mode) taking longer
//! than [`TlsConfig::handshake_timeout`] is dropped.

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use mesh_core::config::MeshEnv;
pub use mesh_core::config::TlsMode;
use mesh_core::identity::SpiffeId;
use parking_lot::Mutex;
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, ServerConfig};

mod accept;
mod material;
mod verify;

pub use accept::{
    MeshAcceptor, MeshConnectInfo, MeshStream, PeerIdentityLayer, PeerIdentityService, incoming,
    serve,
};
pub use material::TlsError;
pub use verify::IdentityMismatch;
pub(crate) use verify::mismatch_in as verify_mismatch;

use material::{Files, Material};

/// The crypto provider of the whole mesh: rustls' ring provider (see the
/// [module docs](self#crypto-provider)).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Where the TLS material is and how the server side behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Certificate chain PEM, leaf first (`MESH_TLS_CERT`).
    pub cert: PathBuf,
    /// Private key PEM (`MESH_TLS_KEY`).
    pub key: PathBuf,
    /// Trust bundle PEM: the mesh CA (`MESH_TLS_CA`).
    pub ca: PathBuf,
    /// Server-side mode (`MESH_TLS_MODE`, default strict).
    pub mode: TlsMode,
    /// How often the files are checked for changes (default 1s).
    pub reload_interval: Duration,
    /// Longest a server-side handshake may take (default 10s).
    pub handshake_timeout: Duration,
}

impl TlsConfig {
    /// Strict mode, the default intervals.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>, ca: impl Into<PathBuf>) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
            ca: ca.into(),
            mode: TlsMode::Strict,
            reload_interval: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(10),
        }
    }

    /// Sets the server-side mode.
    pub fn mode(mut self, mode: TlsMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets how often the files are checked for changes.
    pub fn reload_interval(mut self, every: Duration) -> Self {
        self.reload_interval = every;
        self
    }

    /// Sets the server-side handshake timeout.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The TLS config of the environment: `None` when none of
    /// `MESH_TLS_CERT`, `MESH_TLS_KEY`, `MESH_TLS_CA` is set, an error
    /// when only some are.
    pub fn from_env(env: &MeshEnv) -> Result<Option<TlsConfig>, TlsError> {
        match (&env.tls_cert, &env.tls_key, &env.tls_ca) {
            (None, None, None) => Ok(None),
            (Some(cert), Some(key), Some(ca)) => Ok(Some(
                TlsConfig::new(cert, key, ca).mode(env.tls_mode.unwrap_or(TlsMode::Strict)),
            )),
            (None, _, _) => Err(TlsError::Incomplete {
                missing: "MESH_TLS_CERT",
            }),
            (_, None, _) => Err(TlsError::Incomplete {
                missing: "MESH_TLS_KEY",
            }),
            (_, _, None) => Err(TlsError::Incomplete {
                missing: "MESH_TLS_CA",
            }),
        }
    }
}

/// The live TLS material of this process: loaded, checked, reloaded on
/// change (see the [module docs](self)). Cheap to clone; the reload task
/// ends when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Tls {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    config: TlsConfig,
    provider: Arc<CryptoProvider>,
    pub(crate) material: ArcSwap<Material>,
    loaded: Mutex<Files>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("config", &self.config)
            .field("identity", &self.material.load().identity.as_str())
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads and checks the material. Inside a tokio runtime, also starts
    /// polling the files for changes every
    /// [`reload_interval`](TlsConfig::reload_interval).
    pub fn load(config: TlsConfig) -> Result<Tls, TlsError> {
        let provider = provider();
        let files = Files::read(&config.cert, &config.key, &config.ca)?;
        let material = Material::load(&files, &config.cert, &config.key, &config.ca, &provider)?;
        let shared = Arc::new(Shared {
            config,
            provider,
            material: ArcSwap::from_pointee(material),
            loaded: Mutex::new(files),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(watch(Arc::downgrade(&shared)));
        }
        Ok(Tls { shared })
    }

    /// The config it was loaded from.
    pub fn config(&self) -> &TlsConfig {
        &self.shared.config
    }

    /// The server-side mode.
    pub fn mode(&self) -> TlsMode {
        self.shared.config.mode
    }

    /// The SPIFFE ID of the current local certificate.
    pub fn identity(&self) -> SpiffeId {
        self.shared.material.load().identity.clone()
    }

    /// Time until the current local certificate expires (zero once past).
    pub fn expires_in(&self) -> Duration {
        self.shared
            .material
            .load()
            .not_after
            .duration_since(SystemTime::now())
            .unwrap_or_default()
    }

    /// Reads the files now and swaps the material in if they are good;
    /// else returns why and keeps the current material.
    pub fn reload(&self) -> Result<(), TlsError> {
        let c = &self.shared.config;
        let files = Files::read(&c.cert, &c.key, &c.ca)?;
        self.shared.swap(files)
    }

    /// A client config verifying servers against `expected` (TLS 1.3,
    /// resumption on, ALPN `alpn`), presenting the live certificate.
    pub fn client_config(
        &self,
        expected: SpiffeId,
        alpn: Vec<Vec<u8>>,
    ) -> Result<Arc<ClientConfig>, TlsError> {
        let shared = &self.shared;
        let mut config = ClientConfig::builder_with_provider(shared.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(TlsError::Config)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verify::SpiffeServerVerifier {
                shared: shared.clone(),
                expected,
                provider: shared.provider.clone(),
            }))
            .with_client_cert_resolver(Arc::new(verify::LiveCert(shared.clone())));
        config.alpn_protocols = alpn;
        Ok(Arc::new(config))
    }

    /// The server config of `mode` (strict: client certificate required;
    /// permissive: optional), ALPN `h2` and `http/1.1`, TLS 1.3 only.
    pub fn server_config(&self, mode: TlsMode) -> Result<Arc<ServerConfig>, TlsError> {
        let shared = &self.shared;
        let verifier = Arc::new(verify::LiveClientVerifier {
            shared: shared.clone(),
            mandatory: !matches!(mode, TlsMode::Permissive),
        });
        let mut config = ServerConfig::builder_with_provider(shared.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(TlsError::Config)?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(verify::LiveCert(shared.clone())));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Registers the observable gauge `mesh.tls.cert.expiry` (seconds until
    /// the local certificate expires) on `meter`. It holds the material
    /// weakly: it reports nothing once every `Tls` clone is dropped.
    pub fn register_metrics(&self, meter: &opentelemetry::metrics::Meter) {
        let shared = Arc::downgrade(&self.shared);
        // The instrument lives in the meter provider; the handle may go.
        let _gauge = meter
            .f64_observable_gauge("mesh.tls.cert.expiry")
            .with_unit("s")
            .with_description("Seconds until the local TLS certificate expires")
            .with_callback(move |observer| {
                if let Some(shared) = shared.upgrade() {
                    let m = shared.material.load();
                    let left = match m.not_after.duration_since(SystemTime::now()) {
                        Ok(d) => d.as_secs_f64(),
                        Err(e) => -e.duration().as_secs_f64(),
                    };
                    observer.observe(
                        left,
                        &[opentelemetry::KeyValue::new(
                            "mesh.identity",
                            m.identity.as_str().to_string(),
                        )],
                    );
                }
            })
            .build();
    }
}

impl Shared {
    fn swap(&self, files: Files) -> Result<(), TlsError> {
        let c = &self.config;
        let material = Material::load(&files, &c.cert, &c.key, &c.ca, &self.provider)?;
        tracing::info!(
            identity = material.identity.as_str(),
            cert = %c.cert.display(),
            "TLS material reloaded"
        );
        self.material.store(Arc::new(material));
        *self.loaded.lock() = files;
        Ok(())
    }
}

/// Polls the files; loads a change once it has been stable for one poll.
async fn watch(shared: Weak<Shared>) {
    let Some(every) = shared.upgrade().map(|s| s.config.reload_interval) else {
        return;
    };
    let mut pending: Option<Files> = None;
    let mut failed: Option<Files> = None;
    loop {
        tokio::time::sleep(every).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let c = &shared.config;
        let files = match Files::read(&c.cert, &c.key, &c.ca) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(error = %e, "TLS files not readable; will retry");
                pending = None;
                continue;
            }
        };
        if *shared.loaded.lock() == files || failed.as_ref() == Some(&files) {
            pending = None;
            continue;
        }
        if pending.as_ref() != Some(&files) {
            // Changed since the last poll: wait until it settles.
            pending = Some(files);
            continue;
        }
        pending = None;
        if let Err(e) = shared.swap(files.clone()) {
            tracing::error!(error = %e, "new TLS material rejected; keeping the current certificate");
            failed = Some(files);
        } else {
            failed = None;
        }
    }
}
