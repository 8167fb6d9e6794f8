//! How the pool changes: discovery updates, config changes, outlier
//! detection's reports and periodic evaluation, health-check results (off
//! the request path; the worker, the rare report path and the health-check
//! tasks, under the pool's inner lock).
//!
//! An endpoint is excluded from the balancers (`set_ejected`) while outlier
//! detection ejects it *or* active health checks find it unhealthy; each
//! source lifts only its own reason.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_core::Endpoint;
use mesh_core::balance::Balancer;
use mesh_core::config::{OutlierConfig, ServiceConfig};
use mesh_core::outlier::{EndpointStats, Observation, OutlierDetector, OutlierEvent};
use mesh_core::route::Subsets;
use mesh_discovery::{DiscoveryError, Update};
use parking_lot::Mutex;

use crate::health::{HealthChecker, ProbeError, Transition};

use super::pool::{
    DiscoveryState, EndpointEntry, EndpointTable, Inner, PoolObserver, PoolShared, Snapshot,
    build_subsets, hash_header, now,
};

// === impl PoolShared ===

impl PoolShared {
    /// An observation [`EndpointStats::record`] asked to report.
    pub(crate) fn report(&self, addr: SocketAddr, observation: Observation) {
        let now = now();
        let mut inner = self.inner.lock();
        let Some(event) = inner
            .detector
            .as_mut()
            .and_then(|d| d.report(addr, observation, now))
        else {
            return;
        };
        let snap = self.snapshot.load();
        apply_event(&snap, &event, now, &*self.observer, &inner.health);
        self.publish_counts(&inner);
    }

    /// The periodic outlier pass.
    pub(crate) fn evaluate(&self) {
        let now = now();
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let snap = self.snapshot.load();
        let Some(detector) = inner.detector.as_mut() else {
            return;
        };
        let events = detector.evaluate(snap.endpoints.iter().map(|(a, e)| (*a, &e.stats)), now);
        for event in &events {
            apply_event(&snap, event, now, &*self.observer, &inner.health);
        }
        if !events.is_empty() {
            self.publish_counts(inner);
        }
    }

    /// The outlier evaluation interval, when detection is on.
    pub(crate) fn interval(&self) -> Option<Duration> {
        self.inner.lock().outlier.as_ref().map(|o| o.interval)
    }

    pub(crate) fn apply_update(&self, update: Update) {
        let now = now();
        let mut inner = self.inner.lock();
        inner.set.apply(update);
        let exists = inner.set.exists();
        inner.endpoints = inner.set.endpoints();
        let addrs = inner.set.addresses();
        let me = self.me.clone();
        inner.health.sync(&addrs, &me);
        let events = match inner.detector.as_mut() {
            Some(d) => d.set_endpoints(&addrs, now),
            None => Vec::new(),
        };
        let old = self.snapshot.load_full();
        update_balancers(&old, &inner, now);
        let snap = Snapshot {
            all: old.all.clone(),
            subsets: old.subsets.clone(),
            endpoints: entries(&old.endpoints, &inner.endpoints, inner.outlier.as_ref()),
            hash_on: old.hash_on.clone(),
            outlier: old.outlier,
        };
        for event in &events {
            apply_event(&snap, event, now, &*self.observer, &inner.health);
        }
        // New endpoints join the balancers usable; unchecked ones are not.
        for addr in &addrs {
            if inner.health.is_unhealthy(*addr) {
                for lb in balancers(&snap) {
                    lb.lock().set_ejected(*addr, true, now);
                }
            }
        }
        self.snapshot.store(Arc::new(snap));
        self.publish_counts(&inner);
        drop(inner);
        self.state.send_replace(match exists {
            None => DiscoveryState::Waiting,
            Some(true) => DiscoveryState::Exists,
            Some(false) => DiscoveryState::DoesNotExist,
        });
    }

    /// Marks the service unresolvable (the source failed to watch it).
    pub(crate) fn fail(&self, err: &DiscoveryError) {
        tracing::warn!(service = %self.service, error = %err, "discovery failed");
        *self.failure.lock() = Some(Arc::from(format!("discovery failed: {err}")));
        self.state.send_replace(DiscoveryState::DoesNotExist);
    }

    pub(crate) fn set_config(&self, c: &ServiceConfig) {
        let now = now();
        let mut inner = self.inner.lock();
        self.limits.update(&c.circuit_breaker);
        let slow_start = c.outlier_detection.as_ref().and_then(|o| o.slow_start);
        let old = self.snapshot.load_full();
        let rebuild = inner.lb != c.load_balancer
            || inner.slow_start != slow_start
            || inner.selectors != c.subsets;
        let (all, subsets) = if rebuild {
            let subsets = Subsets::new(c);
            let built = Balancer::new(&c.load_balancer, slow_start)
                .and_then(|all| Ok((all, build_subsets(&subsets, &c.load_balancer, slow_start)?)));
            match built {
                Ok((all, lbs)) => {
                    inner.lb = c.load_balancer.clone();
                    inner.slow_start = slow_start;
                    inner.subsets = subsets;
                    inner.selectors = c.subsets.clone();
                    (Arc::new(Mutex::new(all)), lbs)
                }
                Err(e) => {
                    tracing::warn!(service = %self.service, error = %e, "load balancer config rejected; keeping the previous one");
                    (old.all.clone(), old.subsets.clone())
                }
            }
        } else {
            (old.all.clone(), old.subsets.clone())
        };
        if inner.outlier != c.outlier_detection {
            match &c.outlier_detection {
                None => inner.detector = None,
                Some(cfg) => {
                    let result = match inner.detector.as_mut() {
                        Some(d) => d.set_config(cfg.clone()),
                        None => OutlierDetector::new(cfg.clone()).map(|mut d| {
                            let addrs = inner.set.addresses();
                            d.set_endpoints(&addrs, now);
                            inner.detector = Some(d);
                        }),
                    };
                    if let Err(e) = result {
                        tracing::warn!(service = %self.service, error = %e, "outlier config rejected");
                    }
                }
            }
            inner.outlier = c.outlier_detection.clone();
            let default = OutlierConfig::default();
            for entry in old.endpoints.values() {
                entry
                    .stats
                    .set_config(inner.outlier.as_ref().unwrap_or(&default));
            }
        }
        let health_changed = inner.health.config() != c.health_check.as_ref();
        if health_changed {
            let addrs = inner.set.addresses();
            let me = self.me.clone();
            inner.health.set_config(c.health_check.clone(), &addrs, &me);
        }
        let snap = Snapshot {
            all,
            subsets,
            endpoints: old.endpoints.clone(),
            hash_on: hash_header(c.hash_on.as_ref()),
            outlier: inner.detector.is_some(),
        };
        if rebuild {
            update_balancers(&snap, &inner, now);
        }
        if rebuild || health_changed {
            for addr in inner.set.addresses() {
                let excluded = excluded(&inner, addr);
                for lb in balancers(&snap) {
                    lb.lock().set_ejected(addr, excluded, now);
                }
            }
        }
        self.snapshot.store(Arc::new(snap));
        self.publish_counts(&inner);
    }

    /// A result of health-check prober `id` of `addr`.
    pub(crate) fn health_result(&self, addr: SocketAddr, id: u64, result: Result<(), ProbeError>) {
        let now = now();
        let mut inner = self.inner.lock();
        let transition = inner.health.record(addr, id, result.is_ok());
        let service = &*self.service;
        match (transition, &result) {
            (None, Ok(())) => {}
            (None, Err(e)) => {
                tracing::debug!(service, endpoint = %addr, error = %e, "health check failed");
            }
            (Some(Transition::Healthy), _) => {
                tracing::info!(service, endpoint = %addr, "endpoint healthy: health checks pass");
            }
            (Some(Transition::Unhealthy), Err(e)) => {
                tracing::warn!(service, endpoint = %addr, error = %e, "endpoint unhealthy: health checks fail");
            }
            (Some(Transition::Unhealthy), Ok(())) => {}
        }
        if transition.is_none() {
            return;
        }
        let excluded = excluded(&inner, addr);
        let snap = self.snapshot.load();
        for lb in balancers(&snap) {
            lb.lock().set_ejected(addr, excluded, now);
        }
        self.publish_counts(&inner);
    }

    fn publish_counts(&self, inner: &Inner) {
        let total = inner.endpoints.len() as u64;
        let ejected = inner
            .detector
            .as_ref()
            .map_or(0, |d| d.ejected_count() as u64);
        // Unhealthy and not also ejected: each endpoint counts once.
        let unhealthy = inner
            .endpoints
            .iter()
            .filter(|ep| {
                inner.health.is_unhealthy(ep.address)
                    && !inner
                        .detector
                        .as_ref()
                        .is_some_and(|d| d.is_ejected(ep.address))
            })
            .count() as u64;
        self.observer.endpoint_states(
            total.saturating_sub(ejected).saturating_sub(unhealthy),
            ejected,
            unhealthy,
        );
    }
}

/// Whether `addr` must be out of the balancers: ejected or unhealthy.
fn excluded(inner: &Inner, addr: SocketAddr) -> bool {
    inner.health.is_unhealthy(addr) || inner.detector.as_ref().is_some_and(|d| d.is_ejected(addr))
}

fn balancers(snap: &Snapshot) -> impl Iterator<Item = &Arc<Mutex<Balancer>>> {
    std::iter::once(&snap.all).chain(snap.subsets.iter().map(|(_, lb)| lb))
}

fn update_balancers(snap: &Snapshot, inner: &Inner, now: Instant) {
    snap.all.lock().update(&inner.endpoints, now);
    let parts = inner.subsets.partition(&inner.endpoints);
    for ((_, lb), eps) in snap.subsets.iter().zip(parts) {
        lb.lock().update(&eps, now);
    }
}

fn apply_event(
    snap: &Snapshot,
    event: &OutlierEvent,
    now: Instant,
    observer: &dyn PoolObserver,
    health: &HealthChecker,
) {
    let change = match *event {
        OutlierEvent::Ejected { addr, .. } => Some((addr, true)),
        // Back from ejection, but still out while health checks fail.
        OutlierEvent::Unejected { addr } => Some((addr, health.is_unhealthy(addr))),
        OutlierEvent::Returned { .. } => None,
    };
    if let Some((addr, ejected)) = change {
        for lb in balancers(snap) {
            lb.lock().set_ejected(addr, ejected, now);
        }
    }
    observer.outlier_event(event);
}

/// The endpoint table for `endpoints`, keeping the entries (and counters)
/// of endpoints that remain.
fn entries(
    old: &EndpointTable,
    endpoints: &[Endpoint],
    outlier: Option<&OutlierConfig>,
) -> EndpointTable {
    let default = OutlierConfig::default();
    let config = outlier.unwrap_or(&default);
    endpoints
        .iter()
        .filter_map(|ep| {
            if let Some(e) = old.get(&ep.address) {
                return Some((ep.address, e.clone()));
            }
            let authority = crate::connect::authority(ep.address)?;
            Some((
                ep.address,
                Arc::new(EndpointEntry {
                    stats: EndpointStats::new(config),
                    authority,
                }),
            ))
        })
        .collect()
}
