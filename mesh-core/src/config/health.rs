//! Active health checking: the `health_check` block of a service.
//!
//! With the block, the client probes every endpoint of the service on its
//! own, every `interval`, and sends requests only to endpoints whose
//! probes pass (passive outlier detection, by contrast, watches the
//! requests themselves; the two compose). Without it, nothing is probed.
//!
//! The probe follows the service's `protocol`:
//!
//! - `http` / `http2`: `GET <path>`; a 2xx answer within `timeout` passes.
//! - `grpc`: the unary `grpc.health.v1.Health/Check` with
//!   `HealthCheckRequest { service: <grpc_service> }`; the answer passes
//!   when its status is `SERVING`.
//!
//! Anything else (another status, a timeout, a refused connection) fails.
//! An endpoint turns unhealthy after `unhealthy_threshold` consecutive
//! failures and healthy again after `healthy_threshold` consecutive
//! successes. Defaults follow Envoy's common settings (`interval: 5s`,
//! `timeout: 1s`, `unhealthy_threshold: 3`, `healthy_threshold: 2`) and
//! Kubernetes' habit (`path: /healthz`); the empty `grpc_service` asks for
//! the server's overall health, as in the gRPC health protocol.

use std::time::Duration;

/// The default HTTP health-check path.
pub const DEFAULT_HEALTH_PATH: &str = "/healthz";

/// Active health checking of a service's endpoints (see the
/// [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// Time between two probes of one endpoint (default 5s; a small random
    /// jitter is added).
    pub interval: Duration,
    /// How long one probe may take (default 1s; at most `interval`).
    pub timeout: Duration,
    /// Consecutive successes that make an unhealthy endpoint healthy
    /// (default 2; a new endpoint needs one).
    pub healthy_threshold: u32,
    /// Consecutive failures that make a healthy endpoint unhealthy (default 3).
    pub unhealthy_threshold: u32,
    /// HTTP path probed with `GET` for `http` and `http2` services (default
    /// `/healthz`).
    pub path: String,
    /// The service name sent in `HealthCheckRequest` for `grpc` services
    /// (default empty: the server as a whole).
    pub grpc_service: String,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            path: DEFAULT_HEALTH_PATH.to_string(),
            grpc_service: String::new(),
        }
    }
}
