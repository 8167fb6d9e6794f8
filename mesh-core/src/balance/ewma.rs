//! Peak EWMA: P2C over `latency x (in_flight + 1)`, as Finagle and Linkerd.
//!
//! Least request only sees queue depth; an endpoint that answers slowly (a
//! noisy neighbour, a GC pause) keeps getting its share until its queue grows.
//! Peak EWMA tracks each endpoint's round-trip time as an exponentially
//! weighted moving average that is *peak sensitive*: a sample above the
//! average replaces it at once, a sample below is blended in with weight
//! `1 - exp(-elapsed / decay)`. So a latency spike is punished immediately
//! and forgiven gradually. The cost of an endpoint is
//!
//! ```text
//! cost = ewma(rtt) x (in_flight + 1)        (/ weight when weights differ)
//! ```
//!
//! and a pick compares two random candidates (P2C). With no samples, an
//! endpoint starts at the configured `default_rtt`. While idle its estimate
//! decays toward zero (as in Linkerd and tower), so an endpoint once slow is
//! tried again later rather than starved forever.
//!
//! Feedback arrives through [`Balancer::on_end`](super::Balancer::on_end)
//! with the measured round trip.

use std::time::{Duration, Instant};

use rand::Rng;

use super::View;
use super::hash::two_distinct;

/// One endpoint's latency estimate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ewma {
    /// The estimate, in nanoseconds, as of `stamp`.
    cost_ns: f64,
    stamp: Instant,
}

impl Ewma {
    /// A fresh estimate of `default_rtt` at `now`.
    pub(crate) fn new(default_rtt: Duration, now: Instant) -> Self {
        Self {
            cost_ns: default_rtt.as_nanos() as f64,
            stamp: now,
        }
    }

    /// Take a round-trip sample at `now`.
    pub(crate) fn observe(&mut self, rtt: Duration, now: Instant, decay_ns: f64) {
        let rtt = rtt.as_nanos() as f64;
        if rtt > self.cost_ns {
            self.cost_ns = rtt;
        } else {
            let w = self.weight_kept(now, decay_ns);
            self.cost_ns = self.cost_ns * w + rtt * (1.0 - w);
        }
        if now > self.stamp {
            self.stamp = now;
        }
    }

    /// The estimate at `now`, decayed toward zero since the last sample.
    #[inline]
    pub(crate) fn at(&self, now: Instant, decay_ns: f64) -> f64 {
        self.cost_ns * self.weight_kept(now, decay_ns)
    }

    #[inline]
    fn weight_kept(&self, now: Instant, decay_ns: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.stamp).as_nanos() as f64;
        if elapsed <= 0.0 {
            1.0
        } else {
            (-elapsed / decay_ns).exp()
        }
    }
}

/// Peak-EWMA parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeakEwma {
    /// Decay time, in nanoseconds (> 0).
    pub(crate) decay_ns: f64,
}

impl PeakEwma {
    /// The pick: two distinct uniform samples, the cheaper kept.
    #[inline]
    pub(crate) fn next(&self, view: &View, now: Instant, rng: &mut impl Rng) -> Option<usize> {
        let n = view.cands.len();
        if n <= 1 {
            return view.cands.first().copied();
        }
        let (a, b) = two_distinct(rng, n);
        let (a, b) = (*view.cands.get(a)?, *view.cands.get(b)?);
        if self.cost(view, b, now) < self.cost(view, a, now) {
            Some(b)
        } else {
            Some(a)
        }
    }

    #[inline]
    fn cost(&self, view: &View, i: usize, now: Instant) -> f64 {
        let Some(ep) = view.endpoints.get(i) else {
            return f64::INFINITY;
        };
        let cost = ep.ewma.at(now, self.decay_ns) * (f64::from(ep.in_flight) + 1.0);
        if view.uniform {
            cost
        } else {
            cost / view.eff.get(i).copied().unwrap_or(1.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECAY: f64 = 10e9;

    #[test]
    fn peak_sensitive_and_decays() {
        let t0 = Instant::now();
        let mut e = Ewma::new(Duration::from_millis(30), t0);
        e.observe(
            Duration::from_millis(500),
            t0 + Duration::from_millis(1),
            DECAY,
        );
        assert!((e.at(t0 + Duration::from_millis(1), DECAY) - 500e6).abs() < 1.0);
        // A fast sample right after barely moves it.
        e.observe(
            Duration::from_millis(1),
            t0 + Duration::from_millis(2),
            DECAY,
        );
        assert!(e.at(t0 + Duration::from_millis(2), DECAY) > 499e6);
        // Fast samples over many decay periods bring it down.
        for s in 1..=40 {
            e.observe(Duration::from_millis(1), t0 + Duration::from_secs(s), DECAY);
        }
        assert!(e.at(t0 + Duration::from_secs(40), DECAY) < 20e6);
        // Idle, it decays toward zero.
        let idle = e.at(t0 + Duration::from_secs(200), DECAY);
        assert!(idle < 0.01e6, "{idle}");
    }
}
