//! The environment contract (`MESH_SERVICE`, `MESH_ENDPOINTS_<SVC>`, ...).
//!
//! [`MeshEnv::from_vars`] is pure: the caller passes `std::env::vars()`, tests
//! pass a list. Empty variables count as unset. Every bad variable is
//! reported, each error naming the variable.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use super::addr::{is_service_name, parse_endpoint_list};
use super::error::{ConfigError, ConfigErrorKind, ConfigErrors};
use super::model::MeshConfig;
use crate::endpoint::Endpoint;

/// Server-side mTLS mode (`MESH_TLS_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TlsMode {
    /// Client certificates required (the default when TLS is configured).
    #[default]
    Strict,
    /// Both mTLS and plaintext accepted (for migrations).
    Permissive,
    /// Plaintext only.
    Disabled,
}

/// `MESH_TLS_MODE` was not `strict`, `permissive` or `disabled`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown TLS mode `{0}`; one of strict, permissive, disabled")]
pub struct TlsModeError(pub String);

impl FromStr for TlsMode {
    type Err = TlsModeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "strict" => Ok(TlsMode::Strict),
            "permissive" => Ok(TlsMode::Permissive),
            "disabled" => Ok(TlsMode::Disabled),
            _ => Err(TlsModeError(s.to_string())),
        }
    }
}

/// What a mesh client does with W3C trace context (`MESH_TRACE`).
///
/// The default is [`Propagate`](TraceMode::Propagate), as Linkerd's proxies,
/// gRPC and an Envoy without a tracing provider behave: the mesh records no
/// spans, so a trace it started would have a root no backend knows, and its
/// `sampled` flag would make every downstream service on OpenTelemetry's
/// default parent-based sampler record every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TraceMode {
    /// Every call carries a `traceparent`: a child of the caller's trace
    /// context when it has one, else a new sampled trace.
    Originate,
    /// A call carries a `traceparent` only as a child of the caller's trace
    /// context (an incoming request's, extracted by the server layer): no
    /// new traces (the default).
    #[default]
    Propagate,
    /// The mesh sets no trace headers (a caller's own `traceparent` still
    /// goes through untouched).
    Off,
}

/// `MESH_TRACE` was not `originate`, `propagate` or `off`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown trace mode `{0}`; one of originate, propagate, off")]
pub struct TraceModeError(pub String);

impl FromStr for TraceMode {
    type Err = TraceModeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "originate" => Ok(TraceMode::Originate),
            "propagate" => Ok(TraceMode::Propagate),
            "off" => Ok(TraceMode::Off),
            _ => Err(TraceModeError(s.to_string())),
        }
    }
}

/// The mesh's environment variables, parsed and checked.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MeshEnv {
    /// This service's name (`MESH_SERVICE`, else `OTEL_SERVICE_NAME`).
    pub service: Option<String>,
    /// Config file path (`MESH_CONFIG`).
    pub config_path: Option<PathBuf>,
    /// Static endpoints by service name (`MESH_ENDPOINTS_<SVC>`; the key is
    /// the lower-case service name, `_` read as `-`).
    pub endpoints: BTreeMap<String, Vec<Endpoint>>,
    /// DNS resolver (`MESH_DNS_SERVER`, port 53 unless given).
    pub dns_server: Option<SocketAddr>,
    /// xDS server URL (`MESH_CONTROL_PLANE`).
    pub control_plane: Option<String>,
    /// gRPC xDS bootstrap file (`GRPC_XDS_BOOTSTRAP`, else `MESH_XDS_BOOTSTRAP`).
    pub xds_bootstrap: Option<PathBuf>,
    /// Certificate chain PEM (`MESH_TLS_CERT`).
    pub tls_cert: Option<PathBuf>,
    /// Private key PEM (`MESH_TLS_KEY`).
    pub tls_key: Option<PathBuf>,
    /// Trust bundle PEM (`MESH_TLS_CA`).
    pub tls_ca: Option<PathBuf>,
    /// Server-side TLS mode (`MESH_TLS_MODE`).
    pub tls_mode: Option<TlsMode>,
    /// What clients do with trace context (`MESH_TRACE`).
    pub trace: Option<TraceMode>,
    /// Listen address of example services (`MESH_LISTEN`).
    pub listen: Option<SocketAddr>,
    /// Prometheus `/metrics` address (`MESH_METRICS_ADDR`).
    pub metrics_addr: Option<SocketAddr>,
}

const ENDPOINTS_PREFIX: &str = "MESH_ENDPOINTS_";

/// Whether `key` is a variable of the environment contract.
fn is_mesh_variable(key: &str) -> bool {
    key.starts_with("MESH_") || key == "OTEL_SERVICE_NAME" || key == "GRPC_XDS_BOOTSTRAP"
}

impl MeshEnv {
    /// Reads the mesh variables out of the OS's raw variables, as
    /// `std::env::vars_os()` gives them: one of ours (`MESH_*`,
    /// `OTEL_SERVICE_NAME`, `GRPC_XDS_BOOTSTRAP`) that is not UTF-8 is an
    /// error naming it; anyone else's is ignored. (`std::env::vars()` would
    /// panic on either.)
    pub fn from_vars_os<I: IntoIterator<Item = (OsString, OsString)>>(
        vars: I,
    ) -> Result<MeshEnv, ConfigErrors> {
        let mut utf8 = Vec::new();
        let mut not_utf8 = Vec::new();
        for (k, v) in vars {
            match (k.into_string(), v.into_string()) {
                (Ok(k), Ok(v)) => utf8.push((k, v)),
                (Ok(k), Err(_)) if is_mesh_variable(&k) => not_utf8.push(k),
                _ => {}
            }
        }
        let result = Self::from_vars(utf8);
        if not_utf8.is_empty() {
            return result;
        }
        let mut errors = result.err().map(|e| e.errors).unwrap_or_default();
        errors.extend(not_utf8.iter().map(|k| {
            ConfigError::new(
                ConfigErrorKind::Environment,
                k,
                None,
                "is not valid UTF-8".to_string(),
            )
        }));
        Err(ConfigErrors::new("environment", errors))
    }

    /// Reads the mesh variables out of `vars` (others are ignored).
    pub fn from_vars<I: IntoIterator<Item = (String, String)>>(
        vars: I,
    ) -> Result<MeshEnv, ConfigErrors> {
        let vars: BTreeMap<String, String> = vars
            .into_iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .collect();
        let mut errors = Vec::new();
        let mut err = |var: &str, msg: String| {
            errors.push(ConfigError::new(
                ConfigErrorKind::Environment,
                var,
                None,
                msg,
            ));
        };
        let get = |k: &str| vars.get(k).map(|v| v.trim().to_string());
        let mut env = MeshEnv::default();

        for var in ["MESH_SERVICE", "OTEL_SERVICE_NAME"] {
            if env.service.is_none()
                && let Some(s) = get(var)
            {
                if is_service_name(&s) {
                    env.service = Some(s);
                } else {
                    err(
                        var,
                        format!("`{s}` is not a service name: 1 to 63 of a-z, 0-9 and `-`"),
                    );
                }
            }
        }
        env.config_path = get("MESH_CONFIG").map(PathBuf::from);
        env.control_plane = get("MESH_CONTROL_PLANE");
        if let Some(url) = &env.control_plane
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            err(
                "MESH_CONTROL_PLANE",
                format!("`{url}` is not a URL; write e.g. `http://127.0.0.1:15010`"),
            );
        }
        env.xds_bootstrap = get("GRPC_XDS_BOOTSTRAP")
            .or_else(|| get("MESH_XDS_BOOTSTRAP"))
            .map(PathBuf::from);
        env.tls_cert = get("MESH_TLS_CERT").map(PathBuf::from);
        env.tls_key = get("MESH_TLS_KEY").map(PathBuf::from);
        env.tls_ca = get("MESH_TLS_CA").map(PathBuf::from);
        if let Some(m) = get("MESH_TLS_MODE") {
            match m.parse() {
                Ok(mode) => env.tls_mode = Some(mode),
                Err(e) => err("MESH_TLS_MODE", format!("{e}")),
            }
        }
        if let Some(m) = get("MESH_TRACE") {
            match m.parse() {
                Ok(mode) => env.trace = Some(mode),
                Err(e) => err("MESH_TRACE", format!("{e}")),
            }
        }
        if let Some(s) = get("MESH_DNS_SERVER") {
            match s.parse::<SocketAddr>() {
                Ok(a) => env.dns_server = Some(a),
                Err(_) => match s
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                {
                    Ok(ip) => env.dns_server = Some(SocketAddr::new(ip, 53)),
                    Err(_) => err(
                        "MESH_DNS_SERVER",
                        format!("`{s}` is not `ip` or `ip:port`, e.g. `127.0.0.1:53`"),
                    ),
                },
            }
        }
        for (var, slot) in [
            ("MESH_LISTEN", &mut env.listen),
            ("MESH_METRICS_ADDR", &mut env.metrics_addr),
        ] {
            if let Some(s) = get(var) {
                match s.parse() {
                    Ok(a) => *slot = Some(a),
                    Err(_) => err(
                        var,
                        format!("`{s}` is not an ip:port address, e.g. `127.0.0.1:8080`"),
                    ),
                }
            }
        }
        for (var, value) in vars.range(ENDPOINTS_PREFIX.to_string()..) {
            let Some(suffix) = var.strip_prefix(ENDPOINTS_PREFIX) else {
                break;
            };
            let service = suffix.to_ascii_lowercase().replace('_', "-");
            if !is_service_name(&service) {
                err(
                    var,
                    format!(
                        "`{suffix}` does not name a service; write MESH_ENDPOINTS_<SERVICE>, e.g. MESH_ENDPOINTS_NEWS_SERVICE"
                    ),
                );
                continue;
            }
            match parse_endpoint_list(value) {
                Ok(eps) => {
                    env.endpoints.insert(service, eps);
                }
                Err(e) => err(var, e.to_string()),
            }
        }
        if errors.is_empty() {
            Ok(env)
        } else {
            Err(ConfigErrors::new("environment", errors))
        }
    }
}

impl MeshConfig {
    /// Overlays the environment's endpoints: a service whose config gives
    /// neither `endpoints` nor `dns` takes `MESH_ENDPOINTS_<SVC>` (the file
    /// wins when it says anything); a service only in the environment is
    /// added with default policy.
    pub fn apply_env(&mut self, env: &MeshEnv) {
        for (name, eps) in &env.endpoints {
            let svc = self.services.entry(name.clone()).or_default();
            if svc.endpoints.is_empty() && svc.dns.is_none() {
                svc.endpoints = eps.clone();
            }
        }
    }
}
