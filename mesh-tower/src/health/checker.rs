//! The pool's prober: one tokio task per endpoint of a service with a
//! `health_check` block, and each endpoint's [`HealthState`].
//!
//! The [`HealthChecker`] lives inside the pool, under the pool's inner lock,
//! beside the endpoint set: when discovery adds an endpoint it starts the
//! endpoint's task (the first probe goes out at once), when discovery
//! removes it the task is aborted, and when the pool is dropped every task
//! goes with it. A task holds only a weak reference to the pool and reports
//! each result back through it, so it never keeps the pool alive.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;
use mesh_core::config::{HealthCheckConfig, Protocol};
use rand::Rng;

use super::probe::{ProbeError, check};
use super::state::{HealthState, Transition};
use crate::balance::PoolShared;
use crate::connect::{ConnectConfig, Connector};
use crate::service::rng::with_rng;

/// One probe of one endpoint (the real one is [`check`]; tests inject fakes).
pub(crate) type ProbeFn = Arc<
    dyn Fn(SocketAddr, Arc<HealthCheckConfig>) -> BoxFuture<'static, Result<(), ProbeError>>
        + Send
        + Sync,
>;

/// Where probes come from.
pub(crate) enum ProbeSource {
    /// [`check`] through this connector (built on first use if `None`).
    Real {
        connector: Option<Connector>,
        protocol: Protocol,
        host: Arc<str>,
    },
    /// A given probe function.
    Custom(ProbeFn),
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Prober {
    id: u64,
    state: HealthState,
    _task: AbortOnDrop,
}

/// Every endpoint's probe task and health (see the [module docs](self)).
pub(crate) struct HealthChecker {
    config: Option<Arc<HealthCheckConfig>>,
    source: ProbeSource,
    probe: Option<ProbeFn>,
    probers: HashMap<SocketAddr, Prober>,
    next_id: u64,
}

impl HealthChecker {
    pub(crate) fn new(config: Option<HealthCheckConfig>, source: ProbeSource) -> Self {
        Self {
            config: config.map(Arc::new),
            source,
            probe: None,
            probers: HashMap::new(),
            next_id: 0,
        }
    }

    /// The current config (`None`: no active checks).
    pub(crate) fn config(&self) -> Option<&HealthCheckConfig> {
        self.config.as_deref()
    }

    /// Whether `addr` must get no traffic: checks are on and it has not
    /// passed (yet, or lately).
    pub(crate) fn is_unhealthy(&self, addr: SocketAddr) -> bool {
        self.config.is_some()
            && self
                .probers
                .get(&addr)
                .is_some_and(|p| !p.state.is_healthy())
    }

    /// Follows the endpoint set: stops the tasks of endpoints that left,
    /// starts one for each new endpoint.
    pub(crate) fn sync(&mut self, addrs: &[SocketAddr], pool: &Weak<PoolShared>) {
        self.probers.retain(|a, _| addrs.contains(a));
        let Some(config) = self.config.clone() else {
            return;
        };
        for addr in addrs {
            if !self.probers.contains_key(addr)
                && let Some(prober) = self.start(*addr, HealthState::new(), &config, pool)
            {
                self.probers.insert(*addr, prober);
            }
        }
    }

    /// A new config: every task restarts with it (states are kept); `None`
    /// stops checking and forgets every state.
    pub(crate) fn set_config(
        &mut self,
        config: Option<HealthCheckConfig>,
        addrs: &[SocketAddr],
        pool: &Weak<PoolShared>,
    ) {
        self.config = config.map(Arc::new);
        let old = std::mem::take(&mut self.probers);
        let Some(config) = self.config.clone() else {
            return;
        };
        for addr in addrs {
            let state = old.get(addr).map_or_else(HealthState::new, |p| p.state);
            if let Some(prober) = self.start(*addr, state, &config, pool) {
                self.probers.insert(*addr, prober);
            }
        }
    }

    /// Records a result of prober `id` of `addr`; results of a stopped
    /// prober are ignored.
    pub(crate) fn record(
        &mut self,
        addr: SocketAddr,
        id: u64,
        success: bool,
    ) -> Option<Transition> {
        let config = self.config.as_deref()?;
        let prober = self.probers.get_mut(&addr).filter(|p| p.id == id)?;
        prober.state.record(
            success,
            config.healthy_threshold,
            config.unhealthy_threshold,
        )
    }

    fn probe_fn(&mut self) -> ProbeFn {
        if let Some(p) = &self.probe {
            return p.clone();
        }
        let probe: ProbeFn = match &mut self.source {
            ProbeSource::Custom(f) => f.clone(),
            ProbeSource::Real {
                connector,
                protocol,
                host,
            } => {
                let protocol = *protocol;
                let connector = connector
                    .get_or_insert_with(|| Connector::new(protocol, &ConnectConfig::default()))
                    .clone();
                let host = host.clone();
                Arc::new(move |addr, config| {
                    let connector = connector.clone();
                    let host = host.clone();
                    Box::pin(async move { check(&connector, addr, &host, protocol, &config).await })
                })
            }
        };
        self.probe = Some(probe.clone());
        probe
    }

    fn start(
        &mut self,
        addr: SocketAddr,
        state: HealthState,
        config: &Arc<HealthCheckConfig>,
        pool: &Weak<PoolShared>,
    ) -> Option<Prober> {
        // Without a runtime (a pool driven by hand outside tokio) nothing
        // can be probed: the endpoint is left unchecked (and used), and the
        // next update inside the runtime starts its task.
        let handle = tokio::runtime::Handle::try_current().ok()?;
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        let probe = self.probe_fn();
        let task = handle.spawn(run(pool.clone(), addr, id, config.clone(), probe));
        Some(Prober {
            id,
            state,
            _task: AbortOnDrop(task.abort_handle()),
        })
    }
}

/// Probes `addr` every interval (plus up to 10% jitter, so endpoints are
/// not probed in lockstep), the first time at once.
async fn run(
    pool: Weak<PoolShared>,
    addr: SocketAddr,
    id: u64,
    config: Arc<HealthCheckConfig>,
    probe: ProbeFn,
) {
    loop {
        let result = match tokio::time::timeout(config.timeout, probe(addr, config.clone())).await {
            Ok(r) => r,
            Err(_) => Err(ProbeError::Timeout(config.timeout)),
        };
        let Some(shared) = pool.upgrade() else { return };
        shared.health_result(addr, id, result);
        drop(shared);
        let max_jitter = u64::try_from(config.interval.as_millis() / 10).unwrap_or(u64::MAX);
        let jitter = if max_jitter == 0 {
            0
        } else {
            with_rng(|rng| rng.random_range(0..=max_jitter))
        };
        tokio::time::sleep(config.interval + Duration::from_millis(jitter)).await;
    }
}
