//! What the demo measures, per second: latencies and outcomes of a series
//! of requests (a service as its callers see it, or one instance as it
//! sees its requests), and the requests in flight.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

/// One series of requests: outcomes and latencies since the last
/// [`take`](Series::take), and the requests in flight now.
#[derive(Debug, Default)]
pub struct Series {
    window: Mutex<Window>,
    in_flight: AtomicI64,
}

#[derive(Debug, Default)]
struct Window {
    latencies_us: Vec<u32>,
    errors: u64,
}

/// A request in flight: counted until [`finish`](InFlight::finish)ed or
/// dropped (a dropped one, e.g. a hang the caller gave up on, is an error).
#[derive(Debug)]
pub struct InFlight<'a> {
    series: &'a Series,
    started: tokio::time::Instant,
    done: bool,
}

impl InFlight<'_> {
    /// Records the outcome.
    pub fn finish(mut self, ok: bool) {
        self.done = true;
        self.series.record(self.started.elapsed(), ok);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.series.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.done {
            self.series.record(self.started.elapsed(), false);
        }
    }
}

/// One second of a [`Series`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Requests finished.
    pub count: u64,
    /// Of which failed.
    pub errors: u64,
    /// Median latency.
    pub p50: Option<Duration>,
    /// 99th percentile latency.
    pub p99: Option<Duration>,
    /// In flight at the snapshot.
    pub in_flight: i64,
}

impl Series {
    /// Starts a request.
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            series: self,
            started: tokio::time::Instant::now(),
            done: false,
        }
    }

    fn record(&self, latency: Duration, ok: bool) {
        let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        let mut w = self.window.lock();
        w.latencies_us.push(us);
        if !ok {
            w.errors += 1;
        }
    }

    /// The window since the last call, which starts a new one.
    pub fn take(&self) -> Snapshot {
        let Window {
            mut latencies_us,
            errors,
        } = std::mem::take(&mut *self.window.lock());
        latencies_us.sort_unstable();
        Snapshot {
            count: latencies_us.len() as u64,
            errors,
            p50: percentile(&latencies_us, 0.50),
            p99: percentile(&latencies_us, 0.99),
            in_flight: self.in_flight.load(Ordering::Relaxed),
        }
    }
}

/// The `q` quantile of sorted microseconds (nearest rank).
fn percentile(sorted_us: &[u32], q: f64) -> Option<Duration> {
    let last = sorted_us.len().checked_sub(1)?;
    let rank = ((last as f64) * q).round() as usize;
    sorted_us
        .get(rank.min(last))
        .map(|us| Duration::from_micros(u64::from(*us)))
}

/// A counter read per second: [`take`](Counter::take) returns what was
/// added since the last call.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Since the last call.
    pub fn take(&self) -> u64 {
        self.0.swap(0, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(Duration::from_micros(51)));
        assert_eq!(percentile(&v, 0.99), Some(Duration::from_micros(99)));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[tokio::test]
    async fn a_series_counts_outcomes_and_in_flight() {
        let s = Series::default();
        s.start().finish(true);
        s.start().finish(false);
        let dropped = s.start();
        let open = s.start();
        drop(dropped);
        let snap = s.take();
        assert_eq!((snap.count, snap.errors, snap.in_flight), (3, 2, 1));
        open.finish(true);
        assert_eq!(s.take().count, 1);
        assert_eq!(s.take().count, 0);
    }
}
