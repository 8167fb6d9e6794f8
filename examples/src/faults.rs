//! Failure injection for demos and tests: an instance that fails (503),
//! answers late, or never answers, some of the time.
//!
//! Rates can change while the service runs ([`Faults::set_fail_rate`]), so a
//! demo can make an instance flaky and let it recover. Decisions come from a
//! seeded RNG: the same seed gives the same sequence of faults.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Serve it normally.
    None,
    /// Answer `503 Service Unavailable`.
    Fail,
    /// Never answer (the caller's timeout has to deal with it).
    Hang,
}

/// The failure-injection knobs of one instance; shared, changeable live.
#[derive(Debug)]
pub struct Faults {
    /// Failure probability in millionths.
    fail: AtomicU32,
    /// Hang probability in millionths.
    hang: AtomicU32,
    /// Added latency in microseconds.
    delay_us: AtomicU64,
    rng: Mutex<SmallRng>,
}

const SCALE: f64 = 1_000_000.0;

fn to_ppm(rate: f64) -> u32 {
    // Clamped, so any f64 (NaN included: 0) is a valid probability.
    (rate.clamp(0.0, 1.0) * SCALE) as u32
}

impl Faults {
    /// No faults; decisions drawn from `seed`.
    pub fn new(seed: u64) -> Faults {
        Faults {
            fail: AtomicU32::new(0),
            hang: AtomicU32::new(0),
            delay_us: AtomicU64::new(0),
            rng: Mutex::new(SmallRng::seed_from_u64(seed)),
        }
    }

    /// A seed that differs from run to run (time and process id).
    pub fn random_seed() -> u64 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        nanos ^ (u64::from(std::process::id()) << 32)
    }

    /// Fails this fraction of requests with 503 (0.0..=1.0, clamped).
    pub fn set_fail_rate(&self, rate: f64) {
        self.fail.store(to_ppm(rate), Ordering::Relaxed);
    }

    /// Never answers this fraction of requests (0.0..=1.0, clamped).
    pub fn set_hang_rate(&self, rate: f64) {
        self.hang.store(to_ppm(rate), Ordering::Relaxed);
    }

    /// Delays every answer by `delay`.
    pub fn set_delay(&self, delay: Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.delay_us.store(us, Ordering::Relaxed);
    }

    /// The current failure rate.
    pub fn fail_rate(&self) -> f64 {
        f64::from(self.fail.load(Ordering::Relaxed)) / SCALE
    }

    /// The added latency.
    pub fn delay(&self) -> Duration {
        Duration::from_micros(self.delay_us.load(Ordering::Relaxed))
    }

    /// Draws the fate of one request: hang first, then fail.
    pub fn decide(&self) -> Fault {
        let fail = self.fail.load(Ordering::Relaxed);
        let hang = self.hang.load(Ordering::Relaxed);
        if fail == 0 && hang == 0 {
            return Fault::None;
        }
        let draw: u32 = self.rng.lock().random_range(0..1_000_000);
        if draw < hang {
            Fault::Hang
        } else if draw < hang.saturating_add(fail) {
            Fault::Fail
        } else {
            Fault::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_respected_and_seeded() {
        let run = |seed| {
            let f = Faults::new(seed);
            f.set_fail_rate(0.3);
            f.set_hang_rate(0.1);
            (0..10_000).map(|_| f.decide()).collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7), "same seed, same faults");
        let fails = a.iter().filter(|f| **f == Fault::Fail).count();
        let hangs = a.iter().filter(|f| **f == Fault::Hang).count();
        assert!((2700..3300).contains(&fails), "{fails}");
        assert!((800..1200).contains(&hangs), "{hangs}");
    }

    #[test]
    fn no_faults_by_default_and_clamped() {
        let f = Faults::new(1);
        assert!((0..1000).all(|_| f.decide() == Fault::None));
        f.set_fail_rate(7.0);
        assert!((0..1000).all(|_| f.decide() == Fault::Fail));
        f.set_fail_rate(f64::NAN);
        assert_eq!(f.fail_rate(), 0.0);
    }
}
