//! Golden signals: latency, traffic, errors and saturation of every call,
//! through the OpenTelemetry metrics API.
//!
//! # One pipeline
//!
//! Instruments are created once, from an OpenTelemetry [`Meter`], into a
//! cheap-to-clone [`Metrics`] handle. Where the numbers go is the meter
//! provider's business: OTLP, or Prometheus text at `GET /metrics` when
//! `MESH_METRICS_ADDR` is set ([`prometheus::init_from_env`]); the
//! exposition reads the same instruments, it is not a second
//! instrumentation. Without an installed provider, [`Metrics::global`] is a
//! no-op and costs next to nothing.
//!
//! # Instruments
//!
//! Names and units follow the OpenTelemetry semantic conventions (Prometheus
//! names in parentheses):
//!
//! | instrument | kind | attributes |
//! | --- | --- | --- |
//! | `http.client.request.duration` (`http_client_request_duration_seconds`) | histogram, s | service, route, endpoint, method, status code or error type |
//! | `http.server.request.duration` (`http_server_request_duration_seconds`) | histogram, s | service, route, method, status code, source |
//! | `http.client.active_requests` | up-down counter (observable) | service |
//! | `http.server.active_requests` | up-down counter (observable) | service |
//! | `mesh.client.retries` (`mesh_client_retries_total`) | counter | service |
//! | `mesh.client.circuit_open` (`mesh_client_circuit_open_total`) | counter | service |
//! | `mesh.outlier.ejections` (`mesh_outlier_ejections_total`) | counter | service, endpoint |
//! | `mesh.endpoints` | gauge | service, state (`ready`, `ejected`, `unhealthy`) |
//!
//! Attribute keys: [`SERVICE`], [`ROUTE`], [`ENDPOINT`], [`METHOD`],
//! [`STATUS_CODE`], [`ERROR_TYPE`], [`SOURCE`], [`STATE`]. A label whose
//! value is unknown (no route decided, no endpoint reached) is the empty
//! string, which Prometheus treats as absent.
//!
//! # Cost per request
//!
//! Calls record through OpenTelemetry *bound* instruments: an instrument
//! bound to one attribute set records without the SDK hashing the
//! attributes and looking the series up (which, for five attributes, was
//! most of a call's metrics cost). Each layer keeps a [`SeriesCache`]: the
//! labels that vary between its calls (route, endpoint, method index,
//! status code or error kind) form a small key, hashed with foldhash and
//! looked up without locks, that finds the bound series. A miss builds the
//! attributes exactly as an unbound record would (same keys, values and
//! order), binds them and caches the result, up to [`SERIES_CAP`] series
//! per layer (~200 KB); past that, calls are recorded unbound (same series,
//! just slower). See [`SeriesCache`] for the memory bound.
//!
//! The attribute values themselves are built once: per service
//! ([`ServiceLabels`], from [`Metrics::service`], which also binds the
//! service-only counters `mesh.client.retries` and
//! `mesh.client.circuit_open`), per endpoint address (a copy-on-write map
//! read without locks) and per route (the router's `Arc<str>`). The
//! in-flight counts are per-service atomics in [`ServiceLabels`], read by
//! observable instruments at collection: a call makes one SDK measurement
//! (its duration), not three (BENCHMARKS.md, "mesh-bench").
//!
//! ```
//! use mesh_tower::metrics::{Metrics, MetricsLayer};
//!
//! let metrics = Metrics::global(); // no-op unless a provider is installed
//! let news = metrics.service("news-service");
//! let layer = MetricsLayer::client(metrics.clone(), news.clone());
//! metrics.record_retry(&news);
//! # let _ = layer;
//! ```

mod future;
mod labels;
mod layer;
pub mod prometheus;
mod series;
#[cfg(test)]
mod series_tests;
#[cfg(test)]
pub(crate) mod tests;

use std::net::SocketAddr;
use std::sync::Arc;

use std::sync::OnceLock;
use std::sync::Weak;
use std::sync::atomic::{AtomicI64, Ordering};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, ObservableUpDownCounter};
use parking_lot::Mutex;

pub(crate) use future::Recorder;
pub use future::ResponseFuture;
pub use labels::LabelCache;
pub use labels::ServiceLabels;
#[cfg(test)]
pub(crate) use labels::method_value;
pub(crate) use labels::{Attrs, method_index, method_name};
pub use layer::{ClientMetrics, MetricsLayer};
pub use series::{Bindable, SERIES_CAP, SeriesCache, ValueKey};

/// The instrumentation scope name of the mesh's meter.
pub const SCOPE: &str = "mesh-tower";

/// `http.client.request.duration`.
pub const CLIENT_DURATION: &str = "http.client.request.duration";
/// `http.server.request.duration`.
pub const SERVER_DURATION: &str = "http.server.request.duration";
/// `http.client.active_requests`.
pub const CLIENT_ACTIVE: &str = "http.client.active_requests";
/// `http.server.active_requests`.
pub const SERVER_ACTIVE: &str = "http.server.active_requests";
/// `mesh.client.retries`.
pub const RETRIES: &str = "mesh.client.retries";
/// `mesh.client.circuit_open`.
pub const CIRCUIT_OPEN: &str = "mesh.client.circuit_open";
/// `mesh.outlier.ejections`.
pub const EJECTIONS: &str = "mesh.outlier.ejections";
/// `mesh.endpoints`.
pub const ENDPOINTS: &str = "mesh.endpoints";

/// Attribute: the mesh service (upstream on the client, this service on the
/// server).
pub const SERVICE: &str = "mesh.service";
/// Attribute: the route (router's name on the client, path template on the
/// server).
pub const ROUTE: &str = "http.route";
/// Attribute: the endpoint address `ip:port`.
pub const ENDPOINT: &str = "mesh.endpoint";
/// Attribute: the HTTP method (`_OTHER` for non-standard ones).
pub const METHOD: &str = "http.request.method";
/// Attribute: the response status code.
pub const STATUS_CODE: &str = "http.response.status_code";
/// Attribute: why a call failed without a response
/// ([`crate::error::ErrorKind::as_str`]).
pub const ERROR_TYPE: &str = "error.type";
/// Attribute: the caller's SPIFFE ID (server side, when known).
pub const SOURCE: &str = "mesh.source";
/// Attribute: endpoint state, `ready`, `ejected` or `unhealthy`.
pub const STATE: &str = "mesh.endpoint.state";

/// Histogram buckets for request latencies, in seconds: 0.5 ms to 10 s.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
    10.0,
];

/// The mesh's instruments; clones share them (one `Arc`).
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Instruments>,
}

#[derive(Debug)]
pub(crate) struct Instruments {
    pub(crate) client_duration: Histogram<f64>,
    pub(crate) server_duration: Histogram<f64>,
    /// The in-flight counts live in each service's [`ServiceLabels`]
    /// (atomics, no SDK call per request); these read them at collection.
    _client_active: ObservableUpDownCounter<i64>,
    _server_active: ObservableUpDownCounter<i64>,
    registry: Arc<Registry>,
    retries: Counter<u64>,
    circuit_open: Counter<u64>,
    ejections: Counter<u64>,
    endpoints: Gauge<u64>,
    meter: Meter,
}

// === impl Metrics ===

impl Metrics {
    /// Creates the instruments on `meter`.
    pub fn new(meter: &Meter) -> Metrics {
        let duration = |name: &'static str, what: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(what)
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build()
        };
        let registry = Arc::new(Registry::default());
        let active =
            |name: &'static str, what: &'static str, side: fn(&labels::Inner) -> &AtomicI64| {
                let registry = Arc::clone(&registry);
                meter
                    .i64_observable_up_down_counter(name)
                    .with_unit("{request}")
                    .with_description(what)
                    .with_callback(move |observer| {
                        registry.observe(side, |value, attrs| observer.observe(value, attrs));
                    })
                    .build()
            };
        Metrics {
            inner: Arc::new(Instruments {
                client_duration: duration(
                    CLIENT_DURATION,
                    "Duration of calls through the mesh client, retries included.",
                ),
                server_duration: duration(SERVER_DURATION, "Duration of served requests."),
                _client_active: active(
                    CLIENT_ACTIVE,
                    "Calls in flight through the mesh client.",
                    |l| &l.client_active,
                ),
                _server_active: active(SERVER_ACTIVE, "Requests being served.", |l| {
                    &l.server_active
                }),
                registry,
                retries: meter
                    .u64_counter(RETRIES)
                    .with_unit("{retry}")
                    .with_description("Retries sent (attempts after the first).")
                    .build(),
                circuit_open: meter
                    .u64_counter(CIRCUIT_OPEN)
                    .with_unit("{request}")
                    .with_description("Requests refused at once by a concurrency limit.")
                    .build(),
                ejections: meter
                    .u64_counter(EJECTIONS)
                    .with_unit("{ejection}")
                    .with_description("Endpoints ejected by outlier detection.")
                    .build(),
                endpoints: meter
                    .u64_gauge(ENDPOINTS)
                    .with_unit("{endpoint}")
                    .with_description("Endpoints of a service, by state.")
                    .build(),
                meter: meter.clone(),
            }),
        }
    }

    /// The instruments on the global meter provider's `mesh-tower` meter: a
    /// no-op unless a provider was installed (e.g. by
    /// [`prometheus::init_from_env`]) before this call.
    pub fn global() -> Metrics {
        Metrics::new(&opentelemetry::global::meter(SCOPE))
    }

    /// Precomputes the attribute values of service `name`. Build it once
    /// per service and keep it. It also holds the service's in-flight
    /// counts, which these instruments report: record a service's calls
    /// with the `Metrics` that made its labels.
    pub fn service(&self, name: impl Into<Arc<str>>) -> ServiceLabels {
        let labels = ServiceLabels::new(name.into());
        let i = &self.inner;
        // Fails only if already set, which a fresh `labels` is not.
        let _ = labels.inner().counters.set(labels::ServiceCounters {
            owner: Arc::downgrade(i),
            retries: OnceLock::new(),
            circuit_open: OnceLock::new(),
        });
        self.inner
            .registry
            .services
            .lock()
            .push((labels.service_kv(), Arc::downgrade(labels.inner())));
        labels
    }

    /// The meter these instruments were made on: other crates (mesh-tonic's
    /// gRPC instruments) add theirs to the same pipeline with it.
    pub fn meter(&self) -> &Meter {
        &self.inner.meter
    }

    pub(crate) fn instruments(&self) -> &Instruments {
        &self.inner
    }

    /// Counts one retry of a call to `service`.
    pub fn record_retry(&self, service: &ServiceLabels) {
        match service.counters(&self.inner) {
            Some(c) => c
                .retries
                .get_or_init(|| self.inner.retries.bind(service.service_only()))
                .add(1),
            None => self.inner.retries.add(1, service.service_only()),
        }
    }

    /// Counts one request refused by `service`'s concurrency limit.
    pub fn record_circuit_open(&self, service: &ServiceLabels) {
        match service.counters(&self.inner) {
            Some(c) => c
                .circuit_open
                .get_or_init(|| self.inner.circuit_open.bind(service.service_only()))
                .add(1),
            None => self.inner.circuit_open.add(1, service.service_only()),
        }
    }

    /// Counts one outlier ejection of `endpoint` of `service`.
    pub fn record_ejection(&self, service: &ServiceLabels, endpoint: SocketAddr) {
        let attrs = [service.service_kv(), service.endpoint_kv(endpoint)];
        self.inner.ejections.add(1, &attrs);
    }

    /// Sets how many endpoints of `service` fail active health checks
    /// (state `unhealthy`; off the request path, so attributes are built here).
    pub fn set_unhealthy_endpoints(&self, service: &ServiceLabels, unhealthy: u64) {
        let attrs = [service.service_kv(), KeyValue::new(STATE, "unhealthy")];
        self.inner.endpoints.record(unhealthy, &attrs);
    }

    /// Sets how many endpoints of `service` are ready and ejected.
    pub fn set_endpoints(&self, service: &ServiceLabels, ready: u64, ejected: u64) {
        let (r, e) = service.state_attrs();
        self.inner.endpoints.record(ready, r);
        self.inner.endpoints.record(ejected, e);
    }
}

/// Every [`ServiceLabels`] made by one [`Metrics`], for the in-flight
/// observables. An entry stays after its labels are dropped, so the series
/// keeps reporting 0 (as an up-down counter would) instead of vanishing.
#[derive(Debug, Default)]
struct Registry {
    services: Mutex<Vec<(KeyValue, Weak<labels::Inner>)>>,
}

impl Registry {
    /// Reports one value per service name (labels made twice for one name
    /// are summed).
    fn observe(
        &self,
        side: fn(&labels::Inner) -> &AtomicI64,
        mut report: impl FnMut(i64, &[KeyValue]),
    ) {
        let services = self.services.lock();
        let mut sums: Vec<(&KeyValue, i64)> = Vec::new();
        for (kv, weak) in services.iter() {
            let value = weak
                .upgrade()
                .map_or(0, |inner| side(&inner).load(Ordering::Relaxed));
            match sums.iter_mut().find(|(k, _)| k.value == kv.value) {
                Some((_, sum)) => *sum += value,
                None => sums.push((kv, value)),
            }
        }
        for (kv, sum) in sums {
            report(sum, std::slice::from_ref(kv));
        }
    }
}

/// Attribute helper: a static key with any value.
pub(crate) fn kv(key: &'static str, value: impl Into<opentelemetry::Value>) -> KeyValue {
    KeyValue::new(key, value)
}
