//! Slow start: ramp a new or returning endpoint's share up gradually.
//!
//! An endpoint that just joined (a fresh deploy, a scaled-out replica) or just
//! came back from ejection often has cold caches, JIT, connection pools:
//! sending it its full share at once can make it fail again. Envoy's slow
//! start scales its weight during a window after it (re)joins:
//!
//! ```text
//! effective weight = weight x max(min_factor, (elapsed / window) ^ (1 / aggression))
//! ```
//!
//! with `aggression = 1.0` (a linear ramp) and `min_factor = 0.1` (it gets at
//! least a tenth of its share from the start). Weighted algorithms (weighted
//! round robin, random, least request, peak EWMA, and round robin, whose
//! weights are all 1) apply it. The consistent-hashing algorithms (ring hash,
//! Maglev) do not: changing a weight there moves keys, which is exactly what
//! they promise not to do (Envoy applies slow start to round robin and least
//! request only).
//!
//! To keep `pick` flat, the balancer does not recompute factors per pick: it
//! rebuilds its schedules at most every tenth of the window while some
//! endpoint is warming up ([`SlowStart::refresh_every`]).

use std::time::{Duration, Instant};

/// Slow-start parameters (Envoy's `slow_start_config`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlowStart {
    /// How long the ramp lasts.
    pub window: Duration,
    /// Shape of the ramp: 1.0 is linear, larger ramps faster at first.
    pub aggression: f64,
    /// The smallest factor, so a warming endpoint is never starved.
    pub min_factor: f64,
}

impl SlowStart {
    /// Envoy's defaults over `window`: aggression 1.0, min factor 0.1.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            aggression: 1.0,
            min_factor: 0.1,
        }
    }

    /// The weight factor of an endpoint that started warming up at `since`,
    /// at `now`: in `min_factor..=1.0`, 1.0 once the window has passed.
    pub fn factor(&self, since: Instant, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(since);
        if elapsed >= self.window || self.window.is_zero() {
            return 1.0;
        }
        let progress = elapsed.as_secs_f64() / self.window.as_secs_f64();
        let shaped = if self.aggression == 1.0 {
            progress
        } else {
            progress.powf(1.0 / self.aggression)
        };
        shaped.max(self.min_factor).min(1.0)
    }

    /// Whether an endpoint that started warming at `since` is done by `now`.
    pub fn done(&self, since: Instant, now: Instant) -> bool {
        now.saturating_duration_since(since) >= self.window
    }

    /// How often schedules are refreshed while an endpoint warms up: a tenth
    /// of the window (at least 1 ms).
    pub fn refresh_every(&self) -> Duration {
        (self.window / 10).max(Duration::from_millis(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_ramp_with_floor() {
        let s = SlowStart::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(s.factor(t0, t0), 0.1);
        assert_eq!(s.factor(t0, t0 + Duration::from_millis(500)), 0.1);
        assert!((s.factor(t0, t0 + Duration::from_secs(5)) - 0.5).abs() < 1e-9);
        assert!((s.factor(t0, t0 + Duration::from_secs(9)) - 0.9).abs() < 1e-9);
        assert_eq!(s.factor(t0, t0 + Duration::from_secs(10)), 1.0);
        assert_eq!(s.factor(t0, t0 + Duration::from_secs(60)), 1.0);
        assert!(!s.done(t0, t0 + Duration::from_secs(9)));
        assert!(s.done(t0, t0 + Duration::from_secs(10)));
    }

    #[test]
    fn aggression_bends_the_ramp() {
        let mut s = SlowStart::new(Duration::from_secs(10));
        s.aggression = 2.0;
        let t0 = Instant::now();
        let f = s.factor(t0, t0 + Duration::from_secs(1));
        assert!((f - 0.1f64.sqrt()).abs() < 1e-9, "{f}");
    }
}
