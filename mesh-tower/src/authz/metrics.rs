//! The authorization counters, `mesh.authz.allowed` and `mesh.authz.denied`,
//! the per-caller label cache that keeps recording allocation-free, and
//! each layer's bound series.

use std::sync::Arc;

use mesh_core::identity::SpiffeId;
use opentelemetry::metrics::{Counter, Meter};
use opentelemetry::{KeyValue, Value};

use crate::metrics::{LabelCache, SCOPE, SERVICE, SOURCE, SeriesCache, ValueKey};

/// `mesh.authz.allowed`: requests the authorization layer let through.
pub const ALLOWED: &str = "mesh.authz.allowed";
/// `mesh.authz.denied`: requests the authorization layer refused.
pub const DENIED: &str = "mesh.authz.denied";
/// Attribute: the rule that decided (`app-ui -> news-service`,
/// `prometheus -> * permission 0`, `prometheus -> * no permission`,
/// `default`).
pub const RULE: &str = "mesh.authz.rule";

/// The authorization instruments; clones share them.
///
/// Build them on the meter of the mesh's other instruments (the `mesh-tower`
/// meter of the same provider) so one exposition shows both:
/// [`crate::Mesh::authz_layer`] does.
#[derive(Debug, Clone)]
pub struct AuthzMetrics {
    allowed: Counter<u64>,
    denied: Counter<u64>,
}

impl AuthzMetrics {
    /// Creates the counters on `meter`.
    pub fn new(meter: &Meter) -> AuthzMetrics {
        AuthzMetrics {
            allowed: meter
                .u64_counter(ALLOWED)
                .with_unit("{request}")
                .with_description("Requests allowed by intentions.")
                .build(),
            denied: meter
                .u64_counter(DENIED)
                .with_unit("{request}")
                .with_description("Requests denied by intentions.")
                .build(),
        }
    }

    /// The counters on the global meter provider's `mesh-tower` meter (a
    /// no-op unless a provider was installed first).
    pub fn global() -> AuthzMetrics {
        AuthzMetrics::new(&opentelemetry::global::meter(SCOPE))
    }
}

/// One layer's decision counters, bound per (caller, rule) series.
#[derive(Debug)]
pub(crate) struct Decisions {
    service: Value,
    allowed: SeriesCache<DecisionKey, Counter<u64>>,
    denied: SeriesCache<DecisionKey, Counter<u64>>,
}

/// The labels that vary between decisions of one layer.
#[derive(Clone, PartialEq, Eq, Hash)]
struct DecisionKey {
    source: ValueKey,
    rule: ValueKey,
}

impl Decisions {
    /// The counters of `metrics` for the layer protecting `service`.
    pub(crate) fn new(metrics: &AuthzMetrics, service: Value) -> Decisions {
        Decisions {
            service,
            allowed: SeriesCache::new(metrics.allowed.clone()),
            denied: SeriesCache::new(metrics.denied.clone()),
        }
    }

    /// Counts one decision.
    pub(crate) fn record(&self, allowed: bool, source: Value, rule: Value) {
        let series = if allowed { &self.allowed } else { &self.denied };
        let key = DecisionKey {
            source: ValueKey(source),
            rule: ValueKey(rule),
        };
        series.record(key, 1, |key| {
            [
                KeyValue::new(SERVICE, self.service.clone()),
                KeyValue::new(SOURCE, key.source.0.clone()),
                KeyValue::new(RULE, key.rule.0.clone()),
            ]
        });
    }
}

/// Caller SPIFFE ID -> its label value (cached: no lock on reads).
#[derive(Debug)]
pub(crate) struct SourceLabels {
    cache: LabelCache<SpiffeId>,
    anonymous: Value,
}

impl SourceLabels {
    pub(crate) fn new() -> SourceLabels {
        SourceLabels {
            cache: LabelCache::new(),
            anonymous: Value::from(""),
        }
    }

    /// The label of `id`: its SPIFFE ID, or the empty string without one.
    pub(crate) fn get(&self, id: Option<&SpiffeId>) -> Value {
        let Some(id) = id else {
            return self.anonymous.clone();
        };
        self.cache.get_or_insert_with(id, || {
            (id.clone(), Value::from(Arc::<str>::from(id.as_str())))
        })
    }
}
