//! Attribute values built once and reused: per service, per endpoint, per
//! method. Recording a call clones `Arc`s, it never formats a string.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use arc_swap::ArcSwap;
use opentelemetry::metrics::BoundCounter;
use opentelemetry::{KeyValue, Value};

use super::{ENDPOINT, SERVICE, STATE, kv};

/// The attribute values of one service, built once
/// ([`super::Metrics::service`]) and shared by its layers. Cheap to clone.
#[derive(Clone)]
pub struct ServiceLabels {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    name: Arc<str>,
    service_only: [KeyValue; 1],
    ready: [KeyValue; 2],
    ejected: [KeyValue; 2],
    endpoints: LabelCache<SocketAddr>,
    /// The service-only counters bound to `service_only`, set by the
    /// [`super::Metrics`] that made these labels.
    pub(crate) counters: OnceLock<ServiceCounters>,
    /// Calls in flight through the client and the server layers: plain
    /// atomics, read by the observable in-flight instruments at collection
    /// (see [`super::Metrics::service`]).
    pub(crate) client_active: AtomicI64,
    pub(crate) server_active: AtomicI64,
}

/// `mesh.client.retries` and `mesh.client.circuit_open` bound to one
/// service's attributes on first use (a bound counter is exported from
/// the moment it is bound: binding up front would show a 0 series for every
/// labels made, server side too), and the instruments they come from.
pub(crate) struct ServiceCounters {
    pub(crate) owner: Weak<super::Instruments>,
    pub(crate) retries: OnceLock<BoundCounter<u64>>,
    pub(crate) circuit_open: OnceLock<BoundCounter<u64>>,
}

/// How many endpoint (or route, or identity) values a cache keeps; past
/// that, values are built per use (correct, just not free).
const CACHE_CAP: usize = 4096;

// === impl ServiceLabels ===

impl ServiceLabels {
    pub(crate) fn new(name: Arc<str>) -> ServiceLabels {
        let service = kv(SERVICE, name.clone());
        ServiceLabels {
            inner: Arc::new(Inner {
                name,
                service_only: [service.clone()],
                ready: [service.clone(), kv(STATE, "ready")],
                ejected: [service, kv(STATE, "ejected")],
                endpoints: LabelCache::new(),
                counters: OnceLock::new(),
                client_active: AtomicI64::new(0),
                server_active: AtomicI64::new(0),
            }),
        }
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// One more (`+1`) or one fewer (`-1`) client call in flight.
    pub(crate) fn client_active(&self, delta: i64) {
        self.inner.client_active.fetch_add(delta, Ordering::Relaxed);
    }

    /// One more (`+1`) or one fewer (`-1`) request being served.
    pub(crate) fn server_active(&self, delta: i64) {
        self.inner.server_active.fetch_add(delta, Ordering::Relaxed);
    }

    /// The service's name.
    pub fn name(&self) -> &Arc<str> {
        &self.inner.name
    }

    pub(crate) fn service_kv(&self) -> KeyValue {
        let [s] = &self.inner.service_only;
        s.clone()
    }

    pub(crate) fn service_only(&self) -> &[KeyValue] {
        &self.inner.service_only
    }

    /// The counters bound for this service by `owner`, if `owner` made
    /// these labels.
    pub(crate) fn counters(&self, owner: &Arc<super::Instruments>) -> Option<&ServiceCounters> {
        self.inner
            .counters
            .get()
            .filter(|c| std::ptr::eq(c.owner.as_ptr(), Arc::as_ptr(owner)))
    }

    pub(crate) fn state_attrs(&self) -> (&[KeyValue], &[KeyValue]) {
        (&self.inner.ready, &self.inner.ejected)
    }

    /// The `ip:port` value of `endpoint`, formatted once per endpoint.
    pub(crate) fn endpoint_value(&self, endpoint: SocketAddr) -> Value {
        let cache = &self.inner.endpoints;
        if let Some(v) = cache.get(&endpoint) {
            return v;
        }
        let v = Value::from(Arc::<str>::from(endpoint.to_string()));
        cache.insert(endpoint, v.clone());
        v
    }

    pub(crate) fn endpoint_kv(&self, endpoint: SocketAddr) -> KeyValue {
        kv(ENDPOINT, self.endpoint_value(endpoint))
    }
}

impl fmt::Debug for ServiceLabels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceLabels")
            .field("name", &self.inner.name)
            .field("endpoints_cached", &self.inner.endpoints.len())
            .finish()
    }
}

// === impl LabelCache ===

/// A copy-on-write map from a key to its attribute value: reads take no
/// lock (an `ArcSwap` load), inserts copy the map. Suited to small sets
/// that change rarely: endpoints, route templates, gRPC methods, peer
/// identities. Past a few thousand keys it stops growing (values are then
/// built per use: correct, just not free).
pub struct LabelCache<K> {
    map: ArcSwap<HashMap<K, Value>>,
}

impl<K: Hash + Eq + Clone> LabelCache<K> {
    /// An empty cache.
    pub fn new() -> Self {
        LabelCache {
            map: ArcSwap::from_pointee(HashMap::new()),
        }
    }

    /// The value cached for `key`, if any.
    pub fn get<Q>(&self, key: &Q) -> Option<Value>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.load().get(key).cloned()
    }

    /// Adds `key` unless it is cached already or the cache is full.
    pub fn insert(&self, key: K, value: Value) {
        self.map.rcu(|cur| {
            if cur.len() >= CACHE_CAP || cur.contains_key(&key) {
                return Arc::clone(cur);
            }
            let mut next = HashMap::clone(cur);
            next.insert(key.clone(), value.clone());
            Arc::new(next)
        });
    }

    /// The value cached for `key`, or `make`'s (owned key, value), cached
    /// unless the cache is full.
    pub fn get_or_insert_with<Q>(&self, key: &Q, make: impl FnOnce() -> (K, Value)) -> Value
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(v) = self.get(key) {
            return v;
        }
        let (key, value) = make();
        self.insert(key, value.clone());
        value
    }

    /// How many keys are cached.
    pub fn len(&self) -> usize {
        self.map.load().len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.map.load().is_empty()
    }
}

impl<K: Hash + Eq + Clone> Default for LabelCache<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K> fmt::Debug for LabelCache<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LabelCache")
            .field("len", &self.map.load().len())
            .finish()
    }
}

/// The standard methods' attribute values, then `_OTHER`, by
/// [`method_index`].
const METHOD_NAMES: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE", "_OTHER",
];

/// The index in the method table of `method`: a standard method's, or
/// `_OTHER`'s for the rest (the semantic conventions' rule, which also
/// bounds cardinality).
pub(crate) fn method_index(method: &http::Method) -> u8 {
    use http::Method as M;
    match *method {
        M::GET => 0,
        M::POST => 1,
        M::PUT => 2,
        M::DELETE => 3,
        M::HEAD => 4,
        M::OPTIONS => 5,
        M::PATCH => 6,
        M::CONNECT => 7,
        M::TRACE => 8,
        _ => 9,
    }
}

/// The attribute value of method index `index` (`_OTHER` out of range).
pub(crate) fn method_name(index: u8) -> &'static str {
    METHOD_NAMES
        .get(usize::from(index))
        .copied()
        .unwrap_or("_OTHER")
}

/// The method's attribute value, static for the standard methods and
/// `_OTHER` for the rest.
#[cfg(test)]
pub(crate) fn method_value(method: &http::Method) -> Value {
    Value::from(method_name(method_index(method)))
}

/// Up to six attributes on the stack, passed to an instrument as a slice.
pub(crate) struct Attrs {
    buf: [KeyValue; 6],
    len: usize,
}

impl AsRef<[KeyValue]> for Attrs {
    fn as_ref(&self) -> &[KeyValue] {
        self.as_slice()
    }
}

impl Attrs {
    pub(crate) fn new() -> Attrs {
        // Placeholders: static key and value, no allocation.
        let p = || KeyValue::new("", "");
        Attrs {
            buf: [p(), p(), p(), p(), p(), p()],
            len: 0,
        }
    }

    pub(crate) fn push(&mut self, kv: KeyValue) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = kv;
            self.len += 1;
        }
    }

    pub(crate) fn as_slice(&self) -> &[KeyValue] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}
