//! The typed configuration model: what a valid config file means.
//!
//! These types are the result of parsing *and validating* a file (see
//! [`crate::config`]); a value of them is always valid: weights in range,
//! regexes that compile, splits that name existing subsets. Code that builds
//! them by hand (tests, the control plane) should run
//! [`MeshConfig::validate`](crate::config::MeshConfig) to keep that promise.
//!
//! Durations are [`Duration`]s here and strings like `250ms` in files.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::endpoint::Endpoint;

/// The default SPIFFE trust domain.
pub const DEFAULT_TRUST_DOMAIN: &str = "mesh.local";

/// A whole mesh configuration: the root of a config file.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshConfig {
    /// SPIFFE trust domain (`mesh.local` by default).
    pub trust_domain: String,
    /// What intentions decide when no intention matches.
    pub default_policy: Action,
    /// Services by name.
    pub services: BTreeMap<String, ServiceConfig>,
    /// Authorization rules, in file order (precedence is by specificity, not order).
    pub intentions: Vec<Intention>,
    /// Socket listeners served to Envoy nodes over xDS, by gateway name.
    pub gateways: BTreeMap<String, GatewayConfig>,
}

impl Default for MeshConfig {
    fn default() -> Self {
        Self {
            trust_domain: DEFAULT_TRUST_DOMAIN.to_string(),
            default_policy: Action::Allow,
            services: BTreeMap::new(),
            intentions: Vec::new(),
            gateways: BTreeMap::new(),
        }
    }
}

/// Allow or deny: the outcome of an intention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Action {
    /// Let the request through.
    #[default]
    Allow,
    /// Refuse the request (HTTP 403 / gRPC PERMISSION_DENIED).
    Deny,
}

/// The wire protocol spoken to a service's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// HTTP/1.1.
    #[default]
    Http,
    /// HTTP/2 with prior knowledge.
    Http2,
    /// gRPC (HTTP/2, outcomes classified by `grpc-status`).
    Grpc,
}

/// One service: where its endpoints come from and the policy for calling it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceConfig {
    /// Wire protocol.
    pub protocol: Protocol,
    /// Static endpoints.
    pub endpoints: Vec<Endpoint>,
    /// Discover endpoints by DNS.
    pub dns: Option<DnsTarget>,
    /// Named subsets: name -> label selector.
    pub subsets: BTreeMap<String, BTreeMap<String, String>>,
    /// Load-balancing algorithm and its parameters.
    pub load_balancer: LoadBalancerConfig,
    /// What to hash for `ring_hash` / `maglev`.
    pub hash_on: Option<HashOn>,
    /// Whole-call timeout, retries included. `None`: no timeout.
    pub timeout: Option<Duration>,
    /// Retry policy. `None`: one attempt only.
    pub retry: Option<RetryConfig>,
    /// Concurrency limits.
    pub circuit_breaker: CircuitBreakerConfig,
    /// Outlier detection. `None`: endpoints are never ejected.
    pub outlier_detection: Option<OutlierConfig>,
    /// Active health checking. `None`: endpoints are never probed.
    pub health_check: Option<crate::config::HealthCheckConfig>,
    /// Routes, first match wins. Empty: all traffic to all endpoints.
    pub routes: Vec<RouteConfig>,
    /// The SPIFFE ID the service's servers must present under mTLS.
    /// `None`: `spiffe://<trust_domain>/ns/default/svc/<name>`.
    pub identity: Option<crate::identity::SpiffeId>,
}

/// A DNS name to resolve for endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DnsTarget {
    /// A/AAAA records of `host`, each with `port`.
    Host {
        /// Host name to resolve.
        host: String,
        /// Port for every resolved address.
        port: u16,
    },
    /// SRV records (`_service._proto.name`): targets, ports and weights.
    Srv {
        /// The SRV name, e.g. `_http._tcp.news.example.com`.
        name: String,
    },
}

/// The load-balancing algorithm of a service, with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadBalancerConfig {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Balance over all endpoints when fewer than this percentage are
    /// healthy (not ejected): Envoy's `healthy_panic_threshold`. 0 disables.
    pub panic_threshold_percent: u32,
}

impl Default for LoadBalancerConfig {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::default(),
            panic_threshold_percent: 50,
        }
    }
}

/// A load-balancing algorithm.
#[derive(Debug, Clone, PartialEq)]
pub enum Algorithm {
    /// Each endpoint in turn, ignoring weights.
    RoundRobin,
    /// Smooth weighted round robin / EDF (Envoy, gRPC A58).
    WeightedRoundRobin,
    /// Weighted random.
    Random,
    /// Power of `choice_count` choices over in-flight requests, weight aware
    /// (Envoy's `active_request_bias`). The default.
    LeastRequest {
        /// How many random endpoints to compare (2..=100, default 2).
        choice_count: u32,
        /// Envoy's `active_request_bias` (>= 0, default 1.0).
        active_request_bias: f64,
    },
    /// P2C over peak-EWMA latency x (in-flight + 1) (Finagle, Linkerd).
    PeakEwma {
        /// Decay time of the moving average (default 10s).
        decay: Duration,
        /// Latency assumed for an endpoint with no samples yet (default 30ms).
        default_rtt: Duration,
    },
    /// Consistent hashing on a ring (Ketama).
    RingHash {
        /// Minimum ring entries (default 1024).
        min_ring_size: u64,
        /// Maximum ring entries (default 8_388_608).
        max_ring_size: u64,
    },
    /// Maglev consistent hashing (table size 65537).
    Maglev {
        /// Lookup table size; must be prime (default 65537).
        table_size: u64,
    },
}

impl Default for Algorithm {
    fn default() -> Self {
        Algorithm::LeastRequest {
            choice_count: 2,
            active_request_bias: 1.0,
        }
    }
}

impl Algorithm {
    /// The name used in config files (`least_request`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "round_robin",
            Algorithm::WeightedRoundRobin => "weighted_round_robin",
            Algorithm::Random => "random",
            Algorithm::LeastRequest { .. } => "least_request",
            Algorithm::PeakEwma { .. } => "peak_ewma",
            Algorithm::RingHash { .. } => "ring_hash",
            Algorithm::Maglev { .. } => "maglev",
        }
    }
}

/// What a consistent-hash balancer hashes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HashOn {
    /// The value of this request header (lower case). Requests without it
    /// get a random endpoint.
    Header(String),
}

/// Retry policy.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// Total attempts, the first included (1..=10).
    pub attempts: u32,
    /// Timeout of each attempt, never longer than what is left of the call's.
    pub per_try_timeout: Option<Duration>,
    /// When to retry.
    pub on: Vec<RetryOn>,
    /// Exponential backoff with full jitter between attempts.
    pub backoff: BackoffConfig,
    /// Retry budget shared by all calls to the service.
    pub budget: BudgetConfig,
    /// Retry non-idempotent methods (POST, PATCH) too. Default false.
    pub non_idempotent: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            attempts: 3,
            per_try_timeout: None,
            on: vec![
                RetryOn::ConnectFailure,
                RetryOn::Reset,
                RetryOn::Unavailable,
            ],
            backoff: BackoffConfig::default(),
            budget: BudgetConfig::default(),
            non_idempotent: false,
        }
    }
}

/// A retry condition (Envoy's `retry_on`, gRPC's retryable status codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryOn {
    /// The connection could not be established.
    ConnectFailure,
    /// The connection was reset or closed before a response, or the attempt timed out.
    Reset,
    /// Any 5xx response (and a per-try timeout).
    Server5xx,
    /// 502, 503 or 504 (and a per-try timeout).
    GatewayError,
    /// This HTTP status code (e.g. 503, 429).
    Status(u16),
    /// gRPC `CANCELLED` (1).
    Cancelled,
    /// gRPC `DEADLINE_EXCEEDED` (4).
    DeadlineExceeded,
    /// gRPC `RESOURCE_EXHAUSTED` (8).
    ResourceExhausted,
    /// gRPC `INTERNAL` (13).
    Internal,
    /// gRPC `UNAVAILABLE` (14).
    Unavailable,
}

/// Exponential backoff between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// First backoff (default 25ms).
    pub base: Duration,
    /// Largest backoff (default 10 x base, i.e. 250ms).
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(25),
            max: Duration::from_millis(250),
        }
    }
}

/// Retry budget (Finagle / Linkerd): retries may add at most `ratio` of the
/// recent requests, plus `min_per_second`, over a sliding `window`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetConfig {
    /// Retries per recent request (0.0..=1000.0, default 0.2).
    pub ratio: f64,
    /// Retries per second always allowed (default 10).
    pub min_per_second: u32,
    /// How far back "recent" reaches (1s..=60s, default 10s).
    pub window: Duration,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            ratio: 0.2,
            min_per_second: 10,
            window: Duration::from_secs(10),
        }
    }
}

/// Concurrency limits (Envoy circuit breakers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreakerConfig {
    /// Requests in flight to the service at once (default 1024).
    pub max_requests: u32,
    /// Requests waiting for an endpoint or connection at once (default 1024).
    pub max_pending: u32,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self {
            max_requests: 1024,
            max_pending: 1024,
        }
    }
}

/// Outlier detection: passive health checking by observed outcomes.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierConfig {
    /// Eject after this many consecutive failures (default 5). `None`: off.
    pub consecutive_failures: Option<u32>,
    /// Eject endpoints whose failure rate over an interval is too high.
    pub failure_rate: Option<FailureRateConfig>,
    /// Eject endpoints whose success rate is an outlier among their peers.
    pub success_rate: Option<SuccessRateConfig>,
    /// How often rates are evaluated (default 10s).
    pub interval: Duration,
    /// First ejection time; the n-th ejection lasts n x this (default 30s).
    pub base_ejection: Duration,
    /// Longest ejection (default 300s).
    pub max_ejection: Duration,
    /// Never eject more than this percentage of endpoints (default 10; at
    /// least one endpoint may always be ejected).
    pub max_ejected_percent: u32,
    /// Ramp a returning (or new) endpoint's share up over this long. `None`: at once.
    pub slow_start: Option<Duration>,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: Some(5),
            failure_rate: None,
            success_rate: None,
            interval: Duration::from_secs(10),
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejected_percent: 10,
            slow_start: None,
        }
    }
}

/// Failure-rate ejection (Envoy's failure percentage, as a fraction).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailureRateConfig {
    /// Eject at or above this failure fraction (0.0..=1.0).
    pub threshold: f64,
    /// Only endpoints with at least this many requests in the interval (default 20).
    pub min_requests: u32,
}

/// Success-rate outlier ejection (Envoy, gRPC A50): eject endpoints whose
/// success rate is below mean - stdev x `stdev_factor`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SuccessRateConfig {
    /// Standard deviations below the mean (default 1.9).
    pub stdev_factor: f64,
    /// Only when at least this many endpoints have enough requests (default 5).
    pub min_hosts: u32,
    /// Requests an endpoint needs in the interval to count (default 100).
    pub min_requests: u32,
}

impl Default for SuccessRateConfig {
    fn default() -> Self {
        Self {
            stdev_factor: 1.9,
            min_hosts: 5,
            min_requests: 100,
        }
    }
}

/// One route: a match and where matching traffic goes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteConfig {
    /// Optional name (metrics label); defaults to the route's index.
    pub name: Option<String>,
    /// What requests this route takes.
    pub matches: RouteMatch,
    /// Subset name -> weight. Empty: all endpoints of the service.
    pub split: BTreeMap<String, u32>,
    /// Overrides the service's `timeout` for this route.
    pub timeout: Option<Duration>,
    /// Overrides the service's `retry` for this route.
    pub retry: Option<RetryConfig>,
}

/// Request matchers; every given matcher must match. Empty: matches all.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteMatch {
    /// Path matcher.
    pub path: Option<PathMatch>,
    /// Allowed methods (upper case). Empty: any.
    pub methods: Vec<String>,
    /// Header matchers (names lower case).
    pub headers: Vec<HeaderMatch>,
}

/// How a request path is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// The whole path equals this.
    Exact(String),
    /// The path starts with this.
    Prefix(String),
    /// The whole path matches this regex (validated to compile).
    Regex(String),
}

/// One header matcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMatch {
    /// Header name, lower case.
    pub name: String,
    /// How its value is matched.
    pub value: HeaderValueMatch,
}

/// How a header value is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValueMatch {
    /// The value equals this.
    Exact(String),
    /// The value starts with this.
    Prefix(String),
    /// The whole value matches this regex (validated to compile).
    Regex(String),
    /// The header is present (`true`) or absent (`false`).
    Present(bool),
}

/// An intention: may `source` call `destination`?
#[derive(Debug, Clone, PartialEq)]
pub struct Intention {
    /// Calling service: `name` (namespace `default`), `ns/name`, `ns/*` or `*`.
    pub source: String,
    /// Called service: `name` (namespace `default`), `ns/name`, `ns/*` or `*`.
    pub destination: String,
    /// L4 or L7 decision.
    pub rule: IntentionRule,
}

/// What an intention decides.
#[derive(Debug, Clone, PartialEq)]
pub enum IntentionRule {
    /// L4: allow or deny every request.
    Action(Action),
    /// L7: the first matching permission decides; when none matches, the
    /// `default_policy` applies (Consul semantics: less specific intentions
    /// are not consulted).
    Permissions(Vec<Permission>),
}

/// One L7 permission of an intention.
#[derive(Debug, Clone, PartialEq)]
pub struct Permission {
    /// What a matching request gets.
    pub action: Action,
    /// What requests it matches (path, methods, headers).
    pub matches: RouteMatch,
}

/// A gateway: a socket listener on an Envoy node, routing to services.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// Address the Envoy listener binds.
    pub listen: SocketAddr,
    /// Routes, first match wins.
    pub routes: Vec<GatewayRoute>,
}

/// A gateway route: requests matching go to `service`.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayRoute {
    /// What requests this route takes.
    pub matches: RouteMatch,
    /// Destination service (must be defined under `services`).
    pub service: String,
}
