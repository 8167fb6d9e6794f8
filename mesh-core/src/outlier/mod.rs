//! Outlier detection: per-endpoint ejection on consecutive failures, failure
//! rate and success-rate outliers, with growing ejection times,
//! `max_ejected_percent` and a gradual return.
//!
//! # Passive health checking
//!
//! Active health checks ask an endpoint "are you alive?"; outlier detection
//! instead watches the answers to real traffic and stops sending to an
//! endpoint that serves it badly, as Envoy's outlier detection and gRPC's
//! (gRFC A50) do. Three tests find a bad endpoint:
//!
//! - **consecutive failures**: `consecutive_failures` failures in a row eject
//!   at once (a crashed or black-holed endpoint is caught in milliseconds);
//! - **failure rate**: over an `interval`, an endpoint with at least
//!   `min_requests` requests of which a fraction `>= threshold` failed;
//! - **success-rate outliers**: among the endpoints with at least
//!   `min_requests` requests in the interval (only when there are at least
//!   `min_hosts` of them), those whose success rate is below
//!   `mean - stdev x stdev_factor` (see [`SuccessRateStats`]). This one is
//!   relative: when *every* endpoint fails (the fault is downstream, or
//!   shared), nobody is an outlier and nobody is ejected.
//!
//! # Stop, then gradually open again
//!
//! An ejected endpoint gets no traffic for `base_ejection x times`, capped at
//! `max_ejection`, where `times` is its ejection multiplier: +1 per ejection,
//! -1 per interval spent healthy (Envoy). An endpoint that keeps failing is
//! thus left alone longer and longer; one that recovered is forgiven over
//! time.
//!
//! When the ejection expires it goes on **probation**
//! ([`OutlierEvent::Unejected`]): it is selectable again, and the balancer
//! starts its **slow start** (`slow_start` in the config), so it gets a small
//! share of traffic that grows gradually. Its *first* outcome is the probe:
//! a failure ejects it again at once with `times + 1`; a success returns it
//! to healthy ([`OutlierEvent::Returned`]) while the ramp goes on.
//!
//! `max_ejected_percent` bounds the damage of a bad detector (or of a shared
//! fault): an ejection is refused when it would leave more than that
//! percentage of the endpoints ejected, except that one endpoint may always
//! be ejected. So at most `max(1, floor(max_ejected_percent x n / 100))` of
//! `n` endpoints are ejected at any time.
//!
//! # Who does what
//!
//! - [`EndpointStats`] (one per endpoint, shared by every request to it, lock
//!   free) is the only thing on the request path:
//!   [`record`](EndpointStats::record) counts the [`Observation`] and returns
//!   `true` when the caller must [`report`](OutlierDetector::report) it to the
//!   detector now (a run of consecutive failures, or a probation's probe).
//!   Probation is thus folded into the one record path: there is no separate
//!   call to remember.
//! - [`OutlierDetector`] (one per service, `&mut self`, owned by the caller's
//!   worker) holds the state machine `Healthy -> Ejected -> Probation ->
//!   Healthy` of every endpoint, and runs [`evaluate`](OutlierDetector::evaluate)
//!   every `interval` with the stats of every endpoint.
//! - Every change comes out as an [`OutlierEvent`] that the caller applies to
//!   its balancer: `Ejected` -> `set_ejected(addr, true, now)`,
//!   `Unejected` -> `set_ejected(addr, false, now)` (which starts slow start:
//!   the gradual return), `Returned` -> nothing to do but metrics.
//!
//! Time comes in as `now: Instant` arguments, so tests drive it by hand.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use mesh_core::config::model::OutlierConfig;
//! use mesh_core::outlier::{EndpointStats, Observation, OutlierDetector, OutlierEvent};
//!
//! let config = OutlierConfig { consecutive_failures: Some(3), max_ejected_percent: 50, ..OutlierConfig::default() };
//! let mut detector = OutlierDetector::new(config.clone()).unwrap();
//! let a = "10.0.0.1:80".parse().unwrap();
//! let b = "10.0.0.2:80".parse().unwrap();
//! let t0 = Instant::now();
//! detector.set_endpoints(&[a, b], t0);
//! let stats_a = EndpointStats::new(&config);
//! let stats_b = EndpointStats::new(&config);
//!
//! // On the request path: record, and report when asked to.
//! let mut event = None;
//! for _ in 0..3 {
//!     if stats_a.record(Observation::Failure) {
//!         event = detector.report(a, Observation::Failure, t0);
//!     }
//! }
//! assert!(matches!(event, Some(OutlierEvent::Ejected { times: 1, .. })));
//!
//! // 30s later (base_ejection), the periodic pass un-ejects it: probation.
//! let t1 = t0 + Duration::from_secs(30);
//! let events = detector.evaluate([(a, &stats_a), (b, &stats_b)], t1);
//! assert_eq!(events, vec![OutlierEvent::Unejected { addr: a }]);
//!
//! // Its first outcome is the probe.
//! assert!(stats_a.record(Observation::Success));
//! assert_eq!(detector.report(a, Observation::Success, t1), Some(OutlierEvent::Returned { addr: a }));
//! ```

mod detector;
mod error;
mod rates;
mod stats;

pub use detector::{EjectionReason, HostState, OutlierDetector, OutlierEvent};
pub use error::OutlierConfigError;
pub use rates::SuccessRateStats;
pub use stats::{EndpointStats, IntervalCounts, Observation};

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
