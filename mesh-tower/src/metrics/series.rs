//! Bound instruments, cached per series: a call's variable labels, as a
//! small key, find an instrument already bound to its attribute set.
//!
//! Recording with attributes (`Histogram::record(v, &attrs)`) makes the
//! OpenTelemetry SDK hash the whole attribute slice and look the series up
//! in its map on every call. A *bound* instrument (`Histogram::bind(&attrs)`)
//! resolves the series once; recording through it is an atomic update.
//! [`SeriesCache`] keeps one bound instrument per key: the key is what
//! varies between calls of one service (route, endpoint, method index,
//! status...), hashed with foldhash, and read without locks (an `ArcSwap`
//! load). A miss builds the attributes exactly as an unbound record would,
//! binds, and adds the key (copy-on-write). Bound and unbound records of one
//! attribute set land in the same series.
//!
//! # Memory bound
//!
//! A cache holds at most its cap of keys ([`SERIES_CAP`] unless built
//! [`with_cap`](SeriesCache::with_cap)); past it, records are made unbound
//! (same series, same attributes: correct, just slower). An entry is its
//! key plus one `Arc` (the bound handle, 16 bytes) and the map's overhead:
//! about 100 bytes for the HTTP client's key, so at most ~200 KB per
//! service (twice that during an insert, which copies the map). The series
//! state itself is the SDK's, shared with unbound records; a bound handle
//! keeps its series' tracker alive while cached. A series bound after the
//! SDK's cardinality limit was reached writes to the SDK's overflow series
//! for as long as it is cached (as unbound records do under cumulative
//! temporality, e.g. Prometheus).

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arc_swap::ArcSwap;
use foldhash::fast::RandomState;
use opentelemetry::metrics::{BoundCounter, BoundHistogram, Counter, Histogram};
use opentelemetry::{KeyValue, Value};

/// How many series a [`SeriesCache`] binds by default (the SDK's default
/// cardinality limit per instrument is 2000).
pub const SERIES_CAP: usize = 2048;

/// An instrument that can be bound to an attribute set:
/// [`Histogram<f64>`] and [`Counter<u64>`].
pub trait Bindable {
    /// What is recorded (`f64` seconds, `u64` counts).
    type Value: Copy;
    /// The instrument bound to one attribute set.
    type Bound: Clone;
    /// Binds the instrument to `attrs`.
    fn bind(&self, attrs: &[KeyValue]) -> Self::Bound;
    /// Records `value` through a bound instrument.
    fn record_bound(bound: &Self::Bound, value: Self::Value);
    /// Records `value` with `attrs`, unbound.
    fn record_unbound(&self, value: Self::Value, attrs: &[KeyValue]);
}

impl Bindable for Histogram<f64> {
    type Value = f64;
    type Bound = BoundHistogram<f64>;

    fn bind(&self, attrs: &[KeyValue]) -> BoundHistogram<f64> {
        Histogram::bind(self, attrs)
    }

    fn record_bound(bound: &BoundHistogram<f64>, value: f64) {
        bound.record(value);
    }

    fn record_unbound(&self, value: f64, attrs: &[KeyValue]) {
        self.record(value, attrs);
    }
}

impl Bindable for Counter<u64> {
    type Value = u64;
    type Bound = BoundCounter<u64>;

    fn bind(&self, attrs: &[KeyValue]) -> BoundCounter<u64> {
        Counter::bind(self, attrs)
    }

    fn record_bound(bound: &BoundCounter<u64>, value: u64) {
        bound.add(value);
    }

    fn record_unbound(&self, value: u64, attrs: &[KeyValue]) {
        self.add(value, attrs);
    }
}

/// One instrument's bound series, by key.
pub struct SeriesCache<K, I: Bindable> {
    instrument: I,
    map: ArcSwap<HashMap<K, I::Bound, RandomState>>,
    cap: usize,
}

impl<K: Hash + Eq + Clone, I: Bindable> SeriesCache<K, I> {
    /// An empty cache for `instrument`, holding up to [`SERIES_CAP`] series.
    pub fn new(instrument: I) -> Self {
        Self::with_cap(instrument, SERIES_CAP)
    }

    /// An empty cache for `instrument`, holding up to `cap` series.
    pub fn with_cap(instrument: I, cap: usize) -> Self {
        SeriesCache {
            instrument,
            map: ArcSwap::from_pointee(HashMap::default()),
            cap,
        }
    }

    /// Records `value` in the series of `key`. On a miss, `attrs(&key)`
    /// builds the series' attributes (as an unbound record would have
    /// them): they are bound and cached, or, past the cap, recorded with
    /// unbound.
    pub fn record<A>(&self, key: K, value: I::Value, attrs: impl FnOnce(&K) -> A)
    where
        A: AsRef<[KeyValue]>,
    {
        if let Some(bound) = self.map.load().get(&key) {
            I::record_bound(bound, value);
            return;
        }
        let attrs = attrs(&key);
        if self.map.load().len() >= self.cap {
            self.instrument.record_unbound(value, attrs.as_ref());
            return;
        }
        let bound = self.instrument.bind(attrs.as_ref());
        I::record_bound(&bound, value);
        self.map.rcu(|cur| {
            if cur.len() >= self.cap || cur.contains_key(&key) {
                return Arc::clone(cur);
            }
            let mut next = HashMap::clone(cur);
            next.insert(key.clone(), bound.clone());
            Arc::new(next)
        });
    }

    /// How many series are bound.
    pub fn len(&self) -> usize {
        self.map.load().len()
    }

    /// Whether no series is bound yet.
    pub fn is_empty(&self) -> bool {
        self.map.load().is_empty()
    }

    /// The instrument.
    pub fn instrument(&self) -> &I {
        &self.instrument
    }
}

impl<K, I: Bindable> fmt::Debug for SeriesCache<K, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeriesCache")
            .field("len", &self.map.load().len())
            .field("cap", &self.cap)
            .finish()
    }
}

/// An attribute value as part of a [`SeriesCache`] key: compared and
/// hashed by its text (for the string values of cached labels, a borrow).
#[derive(Clone, Debug)]
pub struct ValueKey(pub Value);

impl PartialEq for ValueKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for ValueKey {}

impl Hash for ValueKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.as_str().hash(state);
    }
}

impl From<Value> for ValueKey {
    fn from(v: Value) -> Self {
        ValueKey(v)
    }
}
