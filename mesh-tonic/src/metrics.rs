//! gRPC client metrics, per gRFC A66, through mesh-tower's OpenTelemetry
//! pipeline.
//!
//! | instrument | kind | attributes |
//! | --- | --- | --- |
//! | `grpc.client.attempt.duration` (`grpc_client_attempt_duration_seconds`) | histogram, s | `grpc.method`, `grpc.status`, `grpc.target`, `mesh.service`, `mesh.endpoint` |
//! | `grpc.client.call.duration` (`grpc_client_call_duration_seconds`) | histogram, s | `grpc.method`, `grpc.status`, `grpc.target`, `mesh.service` |
//!
//! An *attempt* runs from the balancer's pick to its end: the trailers for
//! a response whose status comes after messages (mesh-tower's
//! [`LateOutcome`](mesh_tower::balance::LateOutcome)), else the response
//! head or the error. A *call* runs from [`MeshChannel`]'s `call` to the
//! end of the response body, retries included, and carries the status the
//! application sees. `grpc.status` is the code's name (`OK`,
//! `UNAVAILABLE`, ...); an attempt the caller abandoned is `CANCELLED`.
//! `grpc.method` is the full method name without its leading slash
//! (`helloworld.Greeter/SayHello`); past [`MAX_METHODS`] distinct methods
//! per channel, further ones are `other` (A66's cardinality guard).
//! `grpc.target` and `mesh.service` are the channel's service.
//!
//! The instruments are made on the meter of the [`Mesh`]'s
//! [`Metrics`](mesh_tower::metrics::Metrics) (so they reach its Prometheus
//! `/metrics` or OTLP exporter). Every attribute value is built once: per
//! channel, per method (a read-locked map looked up by the request path)
//! and per endpoint; status names are static. Recording goes through
//! instruments bound per series (mesh-tower's
//! [`SeriesCache`](mesh_tower::metrics::SeriesCache), keyed by method
//! number, status code and endpoint): once a combination has been seen, it
//! neither allocates nor makes the SDK hash attributes.
//!
//! [`MeshChannel`]: crate::MeshChannel
//! [`Mesh`]: mesh_tower::Mesh

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_core::retry::Outcome;
use mesh_tower::balance::{AttemptObserver, AttemptReport};
use mesh_tower::metrics::SeriesCache;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};
use parking_lot::RwLock;

/// `grpc.client.attempt.duration`.
pub const ATTEMPT_DURATION: &str = "grpc.client.attempt.duration";
/// `grpc.client.call.duration`.
pub const CALL_DURATION: &str = "grpc.client.call.duration";
/// Attribute: the full method name, `package.Service/Method`.
pub const METHOD: &str = "grpc.method";
/// Attribute: the status code's name, `OK`, `UNAVAILABLE`, ...
pub const STATUS: &str = "grpc.status";
/// Attribute: the channel's target (the mesh service).
pub const TARGET: &str = "grpc.target";

/// How many distinct methods a channel labels by name.
pub const MAX_METHODS: usize = 1024;
/// How many distinct endpoints a channel caches labels for (past that,
/// labels are built per use: correct, not free).
const MAX_ENDPOINTS: usize = 4096;

/// gRFC A66's latency buckets, in seconds.
pub const A66_BUCKETS: [f64; 41] = [
    0.0, 0.00001, 0.00005, 0.0001, 0.0003, 0.0006, 0.0008, 0.001, 0.002, 0.003, 0.004, 0.005,
    0.006, 0.008, 0.01, 0.013, 0.016, 0.02, 0.025, 0.03, 0.04, 0.05, 0.065, 0.08, 0.1, 0.13, 0.16,
    0.2, 0.25, 0.3, 0.4, 0.5, 0.65, 0.8, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0,
];

const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The name of gRPC status code `code` (`UNKNOWN` for codes out of range).
pub fn code_name(code: u32) -> &'static str {
    usize::try_from(code)
        .ok()
        .and_then(|i| CODE_NAMES.get(i))
        .copied()
        .unwrap_or("UNKNOWN")
}

/// The gRPC code of an HTTP status without `grpc-status` (gRPC's
/// "HTTP to gRPC status code mapping").
pub fn code_of_http(status: u16) -> u32 {
    match status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502..=504 => 14,
        _ => 2,
    }
}

/// The gRPC code an attempt ended with.
pub(crate) fn attempt_code(outcome: Option<&Outcome>) -> u32 {
    match outcome {
        None => 1,
        Some(Outcome::Response {
            grpc_status: Some(code),
            ..
        }) => *code,
        Some(Outcome::Response { status, .. }) => code_of_http(*status),
        Some(Outcome::Timeout) => 4,
        Some(Outcome::ConnectFailure | Outcome::Reset) => 14,
    }
}

/// The labels that vary between attempts of one channel: method (by its
/// [`MethodMetrics::id`]), code, endpoint.
type AttemptKey = (u32, u32, SocketAddr);
/// The labels that vary between calls of one channel: method, code.
type CallKey = (u32, u32);

/// The instruments, bound per series, and the per-channel values, shared
/// by its methods.
#[derive(Debug)]
struct Instruments {
    attempt: SeriesCache<AttemptKey, Histogram<f64>>,
    call: SeriesCache<CallKey, Histogram<f64>>,
    service: KeyValue,
    target: KeyValue,
    endpoints: RwLock<HashMap<SocketAddr, KeyValue>>,
}

impl Instruments {
    fn endpoint(&self, addr: SocketAddr) -> KeyValue {
        if let Some(kv) = self.endpoints.read().get(&addr) {
            return kv.clone();
        }
        let kv = KeyValue::new(mesh_tower::metrics::ENDPOINT, addr.to_string());
        let mut map = self.endpoints.write();
        if map.len() < MAX_ENDPOINTS {
            map.insert(addr, kv.clone());
        }
        kv
    }
}

/// One channel's gRPC metrics: its instruments and its method labels.
#[derive(Debug)]
pub(crate) struct ChannelMetrics {
    instruments: Arc<Instruments>,
    /// By name; foldhash (the paths are the channel's own calls', and
    /// capped at [`MAX_METHODS`]): SipHash of the path was most of a lookup.
    methods: RwLock<HashMap<Box<str>, Arc<MethodMetrics>, foldhash::fast::RandomState>>,
    other: Arc<MethodMetrics>,
}

impl ChannelMetrics {
    /// The instruments for a channel to `service`, made on `meter`.
    pub(crate) fn new(meter: &Meter, service: &str) -> Self {
        let histogram = |name: &'static str, what: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(what)
                .with_boundaries(A66_BUCKETS.to_vec())
                .build()
        };
        let service: Arc<str> = Arc::from(service);
        let instruments = Arc::new(Instruments {
            attempt: SeriesCache::new(histogram(
                ATTEMPT_DURATION,
                "Duration of each attempt of a gRPC call, from the pick to its end.",
            )),
            call: SeriesCache::new(histogram(
                CALL_DURATION,
                "Duration of gRPC calls through the mesh, retries included.",
            )),
            service: KeyValue::new(mesh_tower::metrics::SERVICE, service.clone()),
            target: KeyValue::new(TARGET, service),
            endpoints: RwLock::new(HashMap::new()),
        });
        let other = Arc::new(MethodMetrics {
            instruments: instruments.clone(),
            id: u32::MAX,
            method: KeyValue::new(METHOD, "other"),
        });
        Self {
            instruments,
            methods: RwLock::new(HashMap::default()),
            other,
        }
    }

    /// The metrics of the method at request path `path`
    /// (`/package.Service/Method`).
    pub(crate) fn method(&self, path: &str) -> Arc<MethodMetrics> {
        let name = path.strip_prefix('/').unwrap_or(path);
        if let Some(m) = self.methods.read().get(name) {
            return m.clone();
        }
        let mut methods = self.methods.write();
        if let Some(m) = methods.get(name) {
            return m.clone();
        }
        if methods.len() >= MAX_METHODS {
            return self.other.clone();
        }
        let m = Arc::new(MethodMetrics {
            instruments: self.instruments.clone(),
            id: u32::try_from(methods.len()).unwrap_or(u32::MAX),
            method: KeyValue::new(METHOD, name.to_owned()),
        });
        methods.insert(name.into(), m.clone());
        m
    }
}

/// One method of one channel: records its attempts (an
/// [`AttemptObserver`] the channel puts on each request) and its calls.
#[derive(Debug)]
pub(crate) struct MethodMetrics {
    instruments: Arc<Instruments>,
    /// This method's number in its channel (`u32::MAX`: `other`).
    id: u32,
    method: KeyValue,
}

impl MethodMetrics {
    /// Records one call that started at `start` and ended with `code`.
    pub(crate) fn record_call(&self, start: Instant, code: u32) {
        let i = &self.instruments;
        i.call
            .record((self.id, code), seconds(start.elapsed()), |&(_, code)| {
                [
                    self.method.clone(),
                    KeyValue::new(STATUS, code_name(code)),
                    i.target.clone(),
                    i.service.clone(),
                ]
            });
    }
}

impl AttemptObserver for MethodMetrics {
    fn attempt_ended(&self, report: &AttemptReport) {
        let i = &self.instruments;
        let code = attempt_code(report.outcome.as_ref());
        let key = (self.id, code, report.endpoint);
        i.attempt
            .record(key, seconds(report.elapsed), |&(_, code, endpoint)| {
                [
                    self.method.clone(),
                    KeyValue::new(STATUS, code_name(code)),
                    i.target.clone(),
                    i.service.clone(),
                    i.endpoint(endpoint),
                ]
            });
    }
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes() {
        assert_eq!(code_name(0), "OK");
        assert_eq!(code_name(14), "UNAVAILABLE");
        assert_eq!(code_name(16), "UNAUTHENTICATED");
        assert_eq!(code_name(99), "UNKNOWN");
        assert_eq!(code_of_http(503), 14);
        assert_eq!(code_of_http(404), 12);
        assert_eq!(attempt_code(None), 1);
        assert_eq!(attempt_code(Some(&Outcome::Timeout)), 4);
        assert_eq!(attempt_code(Some(&Outcome::Reset)), 14);
        assert_eq!(
            attempt_code(Some(&Outcome::Response {
                status: 200,
                grpc_status: Some(13)
            })),
            13
        );
    }

    #[test]
    fn methods_are_cached_and_capped() {
        let meter = opentelemetry::global::meter("test");
        let m = ChannelMetrics::new(&meter, "greeter");
        let a = m.method("/helloworld.Greeter/SayHello");
        let b = m.method("/helloworld.Greeter/SayHello");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.method.value.as_str(), "helloworld.Greeter/SayHello");
        for i in 0..MAX_METHODS {
            m.method(&format!("/s/M{i}"));
        }
        assert_eq!(m.method("/s/overflow").method.value.as_str(), "other");
    }
}
