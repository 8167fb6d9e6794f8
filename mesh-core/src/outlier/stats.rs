//! The hot path: per-endpoint outcome counters ([`EndpointStats`]).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::config::model::OutlierConfig;

/// The health verdict on one finished request to one endpoint.
///
/// Classify once, as tower-http's `classify` does, and feed the verdict
/// here. The recommended mapping (what the tower and tonic layers do):
///
/// | outcome | observation |
/// | --- | --- |
/// | HTTP 5xx response | `Failure` |
/// | connect failure, connection reset, TLS handshake failure | `Failure` |
/// | per-try timeout (the endpoint did not answer in time) | `Failure` |
/// | gRPC `UNAVAILABLE`, `INTERNAL`, `UNKNOWN`, `DATA_LOSS`, `DEADLINE_EXCEEDED` | `Failure` |
/// | any other response: 2xx, 3xx, 4xx (incl. 429), other gRPC statuses | `Success` |
/// | cancelled by the caller before an answer | not recorded |
///
/// 4xx answers are the endpoint working correctly on a bad request, so they
/// count as healthy; a caller-side cancellation says nothing about the
/// endpoint, so it is not recorded at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Observation {
    /// The endpoint answered properly.
    Success,
    /// The endpoint failed the request (see the table above).
    Failure,
}

/// Successes and failures counted over one evaluation interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IntervalCounts {
    /// Successful requests.
    pub successes: u64,
    /// Failed requests.
    pub failures: u64,
}

impl IntervalCounts {
    /// All requests counted.
    pub fn total(&self) -> u64 {
        self.successes.saturating_add(self.failures)
    }
}

/// Lock-free outcome counters for one endpoint, shared by every request to it.
///
/// [`record`](Self::record) is the only call on the request path: a few
/// relaxed atomic operations, no lock, no allocation. The
/// [`OutlierDetector`](super::OutlierDetector) reads (and resets) the
/// interval counters in [`evaluate`](super::OutlierDetector::evaluate).
#[derive(Debug, Default)]
pub struct EndpointStats {
    /// Consecutive-failure threshold; `0` is off.
    threshold: AtomicU32,
    consecutive_failures: AtomicU32,
    successes: AtomicU64,
    failures: AtomicU64,
    /// Set when the endpoint enters probation; the first outcome after that
    /// takes it (exactly one caller sees it) and must be reported.
    probing: AtomicBool,
}

impl EndpointStats {
    /// Counters for an endpoint under `config` (its `consecutive_failures`
    /// threshold).
    pub fn new(config: &OutlierConfig) -> Self {
        let stats = Self::default();
        stats.set_config(config);
        stats
    }

    /// Applies a new config (its `consecutive_failures` threshold) live.
    pub fn set_config(&self, config: &OutlierConfig) {
        self.threshold
            .store(config.consecutive_failures.unwrap_or(0), Ordering::Relaxed);
    }

    /// Records one outcome. Returns `true` when the caller must report this
    /// observation to [`OutlierDetector::report`](super::OutlierDetector::report)
    /// now, which happens when:
    ///
    /// - the run of consecutive failures just reached the
    ///   `consecutive_failures` threshold (or a further multiple of it, so an
    ///   ejection refused by `max_ejected_percent` is asked for again after
    ///   another run of failures); or
    /// - the endpoint is on probation and this is its first outcome (the
    ///   probe): exactly one concurrent caller gets `true` for it.
    pub fn record(&self, observation: Observation) -> bool {
        let crossed = match observation {
            Observation::Success => {
                self.successes.fetch_add(1, Ordering::Relaxed);
                self.consecutive_failures.store(0, Ordering::Relaxed);
                false
            }
            Observation::Failure => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                let run = self
                    .consecutive_failures
                    .fetch_add(1, Ordering::Relaxed)
                    .wrapping_add(1);
                let threshold = self.threshold.load(Ordering::Relaxed);
                threshold != 0 && run != 0 && run.is_multiple_of(threshold)
            }
        };
        // The counters above are written before the flag is taken, so an
        // `evaluate` that sees the flag taken also sees this outcome counted.
        let probe =
            self.probing.load(Ordering::Relaxed) && self.probing.swap(false, Ordering::AcqRel);
        crossed || probe
    }

    /// The current run of consecutive failures.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    /// The counts of the current interval so far (without resetting them).
    pub fn interval_counts(&self) -> IntervalCounts {
        IntervalCounts {
            successes: self.successes.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }

    /// Whether the endpoint is on probation and its probe has not been seen yet.
    pub fn is_probing(&self) -> bool {
        self.probing.load(Ordering::Acquire)
    }

    /// Takes the interval counts, starting a new interval.
    pub(crate) fn take_interval(&self) -> IntervalCounts {
        IntervalCounts {
            successes: self.successes.swap(0, Ordering::Relaxed),
            failures: self.failures.swap(0, Ordering::Relaxed),
        }
    }

    /// Arms the probe: the next outcome will be reported. Also forgets the
    /// failure run that led to the ejection.
    pub(crate) fn start_probation(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.probing.store(true, Ordering::Release);
    }

    /// Disarms the probe (probation concluded another way).
    pub(crate) fn end_probation(&self) {
        self.probing.store(false, Ordering::Release);
    }
}
