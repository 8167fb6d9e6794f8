//! [`OutlierDetector`]: the per-endpoint ejection state machine.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::error::OutlierConfigError;
use super::rates::{self, Sample, SuccessRateStats};
use super::stats::{EndpointStats, Observation};
use crate::config::model::OutlierConfig;

/// Where one endpoint is in the ejection cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostState {
    /// Selectable; its outcomes are watched.
    Healthy,
    /// Not selectable until `until`.
    Ejected {
        /// When the ejection expires (checked at the next `evaluate`).
        until: Instant,
    },
    /// The ejection expired: selectable again (from the start of its slow
    /// start), and its next outcome decides whether it returns or is ejected
    /// again at once.
    Probation,
}

/// Why an endpoint was ejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EjectionReason {
    /// `consecutive_failures` failures in a row.
    ConsecutiveFailures,
    /// Failure fraction over an interval at or above `failure_rate.threshold`.
    FailureRate,
    /// Success rate below `mean - stdev x stdev_factor` of its peers.
    SuccessRate,
    /// The probe after an ejection failed.
    ProbationFailure,
}

/// A change the caller applies to its balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutlierEvent {
    /// Stop sending to `addr` (`Balancer::set_ejected(addr, true, now)`).
    Ejected {
        /// The endpoint.
        addr: SocketAddr,
        /// When the ejection expires.
        until: Instant,
        /// The ejection multiplier: this ejection lasts
        /// `min(base_ejection x times, max_ejection)`.
        times: u32,
        /// What triggered it.
        reason: EjectionReason,
    },
    /// The ejection expired: make `addr` selectable again with slow start
    /// (`Balancer::set_ejected(addr, false, now)`); it is on probation.
    Unejected {
        /// The endpoint.
        addr: SocketAddr,
    },
    /// The probe succeeded: `addr` is healthy again (informational: its
    /// slow start began at `Unejected`).
    Returned {
        /// The endpoint.
        addr: SocketAddr,
    },
}

#[derive(Debug, Clone, Copy)]
struct Host {
    state: HostState,
    /// Ejection multiplier: +1 per ejection, -1 per interval while healthy.
    multiplier: u32,
    /// Un-ejected but its probe is not armed in its stats yet.
    arm_probe: bool,
}

impl Host {
    fn new() -> Self {
        Self {
            state: HostState::Healthy,
            multiplier: 0,
            arm_probe: false,
        }
    }
}

/// Passive health checking for the endpoints of one service (or subset).
///
/// The caller owns it (behind whatever lock or task it likes: every method is
/// `&mut self`, and none is on the per-request path except
/// [`report`](Self::report), which runs only when [`EndpointStats::record`]
/// says so).
#[derive(Debug, Clone)]
pub struct OutlierDetector {
    config: OutlierConfig,
    hosts: BTreeMap<SocketAddr, Host>,
    ejected: usize,
    ejections_total: u64,
    ejections_overflow_total: u64,
    last_success_rate: Option<SuccessRateStats>,
}

// === impl OutlierDetector ===

impl OutlierDetector {
    /// A detector with no endpoints yet; call [`set_endpoints`](Self::set_endpoints).
    pub fn new(config: OutlierConfig) -> Result<Self, OutlierConfigError> {
        validate(&config)?;
        Ok(Self {
            config,
            hosts: BTreeMap::new(),
            ejected: 0,
            ejections_total: 0,
            ejections_overflow_total: 0,
            last_success_rate: None,
        })
    }

    /// The config in force.
    pub fn config(&self) -> &OutlierConfig {
        &self.config
    }

    /// Applies a new config live; endpoint states and multipliers are kept
    /// (update each [`EndpointStats::set_config`] too).
    pub fn set_config(&mut self, config: OutlierConfig) -> Result<(), OutlierConfigError> {
        validate(&config)?;
        self.config = config;
        Ok(())
    }

    /// Sets the endpoint set: keeps the state of endpoints that remain, drops
    /// removed ones, adds new ones as healthy. If the smaller set would leave
    /// more endpoints ejected than `max_ejected_percent` allows, the ones whose
    /// ejection ends soonest are un-ejected now (returned as events).
    pub fn set_endpoints(&mut self, addrs: &[SocketAddr], now: Instant) -> Vec<OutlierEvent> {
        let _ = now; // un-ejection on shrink happens "now"; kept for symmetry with `evaluate`.
        let mut next = BTreeMap::new();
        for addr in addrs {
            let host = self.hosts.get(addr).copied().unwrap_or_else(Host::new);
            next.insert(*addr, host);
        }
        self.hosts = next;
        self.ejected = self
            .hosts
            .values()
            .filter(|h| matches!(h.state, HostState::Ejected { .. }))
            .count();
        let mut events = Vec::new();
        while self.ejected > self.max_ejected() {
            let soonest = self
                .hosts
                .iter()
                .filter_map(|(addr, h)| match h.state {
                    HostState::Ejected { until } => Some((until, *addr)),
                    _ => None,
                })
                .min();
            let Some((_, addr)) = soonest else { break };
            self.uneject(addr);
            events.push(OutlierEvent::Unejected { addr });
        }
        events
    }

    /// Handles an observation that [`EndpointStats::record`] said to report:
    /// a probe outcome (failure: ejected again at once, `times + 1`; success:
    /// [`OutlierEvent::Returned`]) or a run of consecutive failures.
    ///
    /// Unknown endpoints and ejected ones are ignored.
    pub fn report(
        &mut self,
        addr: SocketAddr,
        observation: Observation,
        now: Instant,
    ) -> Option<OutlierEvent> {
        let host = self.hosts.get_mut(&addr)?;
        match (host.state, observation) {
            (HostState::Probation, Observation::Success) => {
                host.state = HostState::Healthy;
                host.arm_probe = false;
                Some(OutlierEvent::Returned { addr })
            }
            (HostState::Probation, Observation::Failure) => {
                self.try_eject(addr, EjectionReason::ProbationFailure, now)
            }
            (HostState::Healthy, Observation::Failure) => self.on_consecutive_failures(addr, now),
            (HostState::Healthy, Observation::Success) | (HostState::Ejected { .. }, _) => None,
        }
    }

    /// Ejects `addr` now for a run of consecutive failures, if
    /// `max_ejected_percent` allows. `None` when refused, when the endpoint is
    /// unknown or already ejected, or when consecutive-failure ejection is off.
    pub fn on_consecutive_failures(
        &mut self,
        addr: SocketAddr,
        now: Instant,
    ) -> Option<OutlierEvent> {
        self.config.consecutive_failures?;
        let reason = match self.hosts.get(&addr)?.state {
            HostState::Healthy => EjectionReason::ConsecutiveFailures,
            HostState::Probation => EjectionReason::ProbationFailure,
            HostState::Ejected { .. } => return None,
        };
        self.try_eject(addr, reason, now)
    }

    /// The periodic pass, run every `interval` with the stats of every
    /// endpoint:
    ///
    /// 1. expired ejections end (`Unejected`; the endpoint goes on probation
    ///    and its stats arm the probe);
    /// 2. healthy endpoints' ejection multipliers decay by one;
    /// 3. a probation still open with its probe already seen is decided by
    ///    the interval's counts (any failure: ejected again; else returned);
    /// 4. success-rate outliers, then failure-rate ones, are ejected (worst
    ///    first) while `max_ejected_percent` allows;
    /// 5. every interval counter is reset.
    pub fn evaluate<'a>(
        &mut self,
        stats: impl IntoIterator<Item = (SocketAddr, &'a EndpointStats)>,
        now: Instant,
    ) -> Vec<OutlierEvent> {
        let mut events = Vec::new();
        for (addr, host) in self.hosts.iter_mut() {
            match host.state {
                HostState::Ejected { until } if until <= now => {
                    host.state = HostState::Probation;
                    host.arm_probe = true;
                    self.ejected = self.ejected.saturating_sub(1);
                    events.push(OutlierEvent::Unejected { addr: *addr });
                }
                HostState::Healthy => host.multiplier = host.multiplier.saturating_sub(1),
                _ => {}
            }
        }

        let mut samples = Vec::new();
        for (addr, endpoint) in stats {
            let counts = endpoint.take_interval();
            let Some(host) = self.hosts.get_mut(&addr) else {
                continue;
            };
            match host.state {
                HostState::Healthy => samples.push(Sample { addr, counts }),
                HostState::Probation if host.arm_probe => {
                    host.arm_probe = false;
                    endpoint.start_probation();
                    continue;
                }
                HostState::Probation if !endpoint.is_probing() => {
                    // The probe was taken but not decided through `report`
                    // (not reported, or its re-ejection was refused).
                    if counts.failures > 0 {
                        events.extend(self.try_eject(addr, EjectionReason::ProbationFailure, now));
                    } else if counts.successes > 0 {
                        host.state = HostState::Healthy;
                        events.push(OutlierEvent::Returned { addr });
                    }
                }
                HostState::Probation | HostState::Ejected { .. } => {}
            }
            if !matches!(
                self.hosts.get(&addr).map(|h| h.state),
                Some(HostState::Probation)
            ) {
                endpoint.end_probation();
            }
        }

        self.last_success_rate = None;
        let mut candidates = Vec::new();
        if let Some(config) = &self.config.success_rate {
            let (stats, outliers) = rates::success_rate_outliers(&samples, config);
            self.last_success_rate = stats;
            candidates.extend(
                outliers
                    .into_iter()
                    .map(|(a, _)| (a, EjectionReason::SuccessRate)),
            );
        }
        if let Some(config) = &self.config.failure_rate {
            let outliers = rates::failure_rate_outliers(&samples, config);
            candidates.extend(
                outliers
                    .into_iter()
                    .map(|(a, _)| (a, EjectionReason::FailureRate)),
            );
        }
        for (addr, reason) in candidates {
            let healthy = matches!(
                self.hosts.get(&addr).map(|h| h.state),
                Some(HostState::Healthy)
            );
            if healthy {
                events.extend(self.try_eject(addr, reason, now));
            }
        }
        events
    }

    /// The state of `addr`, if it is a known endpoint.
    pub fn state(&self, addr: SocketAddr) -> Option<HostState> {
        self.hosts.get(&addr).map(|h| h.state)
    }

    /// Whether `addr` is ejected now (not selectable).
    pub fn is_ejected(&self, addr: SocketAddr) -> bool {
        matches!(self.state(addr), Some(HostState::Ejected { .. }))
    }

    /// The ejection multiplier of `addr` (its next ejection lasts
    /// `base_ejection x (multiplier + 1)`, capped).
    pub fn multiplier(&self, addr: SocketAddr) -> Option<u32> {
        self.hosts.get(&addr).map(|h| h.multiplier)
    }

    /// Endpoints known.
    pub fn endpoint_count(&self) -> usize {
        self.hosts.len()
    }

    /// Endpoints ejected now (metric `ejected`).
    pub fn ejected_count(&self) -> usize {
        self.ejected
    }

    /// The most endpoints that may be ejected at once now:
    /// `max(1, floor(max_ejected_percent x endpoints / 100))` (0 without endpoints).
    pub fn max_ejected(&self) -> usize {
        max_ejected(self.hosts.len(), self.config.max_ejected_percent)
    }

    /// Ejections since creation (metric `ejections_total`).
    pub fn ejections_total(&self) -> u64 {
        self.ejections_total
    }

    /// Ejections refused by `max_ejected_percent` since creation (Envoy's
    /// `ejections_overflow`).
    pub fn ejections_overflow_total(&self) -> u64 {
        self.ejections_overflow_total
    }

    /// The success-rate statistics of the last `evaluate`, when they could be
    /// computed (enough endpoints with enough requests).
    pub fn last_success_rate(&self) -> Option<SuccessRateStats> {
        self.last_success_rate
    }

    /// How long the `times`-th ejection lasts: `base_ejection x times`,
    /// capped at `max_ejection`.
    pub fn ejection_duration(&self, times: u32) -> Duration {
        self.config
            .base_ejection
            .checked_mul(times.max(1))
            .map_or(self.config.max_ejection, |d| {
                d.min(self.config.max_ejection)
            })
    }

    fn may_eject(&self) -> bool {
        let n = self.hosts.len() as u64;
        let pct = u64::from(self.config.max_ejected_percent);
        n > 0 && (self.ejected == 0 || (self.ejected as u64 + 1) * 100 <= pct * n)
    }

    fn try_eject(
        &mut self,
        addr: SocketAddr,
        reason: EjectionReason,
        now: Instant,
    ) -> Option<OutlierEvent> {
        if !self.may_eject() {
            self.ejections_overflow_total = self.ejections_overflow_total.saturating_add(1);
            return None;
        }
        let times = self.hosts.get(&addr)?.multiplier.saturating_add(1);
        let until = now
            .checked_add(self.ejection_duration(times))
            .or_else(|| now.checked_add(self.config.base_ejection))
            .unwrap_or(now);
        let host = self.hosts.get_mut(&addr)?;
        host.multiplier = times;
        host.state = HostState::Ejected { until };
        host.arm_probe = false;
        self.ejected += 1;
        self.ejections_total = self.ejections_total.saturating_add(1);
        Some(OutlierEvent::Ejected {
            addr,
            until,
            times,
            reason,
        })
    }

    fn uneject(&mut self, addr: SocketAddr) {
        if let Some(host) = self.hosts.get_mut(&addr)
            && matches!(host.state, HostState::Ejected { .. })
        {
            host.state = HostState::Probation;
            host.arm_probe = true;
            self.ejected = self.ejected.saturating_sub(1);
        }
    }
}

fn max_ejected(endpoints: usize, percent: u32) -> usize {
    if endpoints == 0 {
        return 0;
    }
    let allowed = (endpoints as u64).saturating_mul(u64::from(percent)) / 100;
    usize::try_from(allowed).unwrap_or(usize::MAX).max(1)
}

fn validate(config: &OutlierConfig) -> Result<(), OutlierConfigError> {
    if config.interval.is_zero() {
        return Err(OutlierConfigError::ZeroInterval);
    }
    if config.base_ejection.is_zero() {
        return Err(OutlierConfigError::ZeroBaseEjection);
    }
    if config.max_ejection < config.base_ejection {
        return Err(OutlierConfigError::MaxEjectionBelowBase {
            base: config.base_ejection,
            max: config.max_ejection,
        });
    }
    if config.max_ejected_percent > 100 {
        return Err(OutlierConfigError::MaxEjectedPercent(
            config.max_ejected_percent,
        ));
    }
    if config.consecutive_failures == Some(0) {
        return Err(OutlierConfigError::ZeroConsecutiveFailures);
    }
    if let Some(fr) = &config.failure_rate
        && !(fr.threshold > 0.0 && fr.threshold <= 1.0)
    {
        return Err(OutlierConfigError::FailureRateThreshold(fr.threshold));
    }
    if let Some(sr) = &config.success_rate
        && !(sr.stdev_factor.is_finite() && sr.stdev_factor >= 0.0)
    {
        return Err(OutlierConfigError::StdevFactor(sr.stdev_factor));
    }
    Ok(())
}
