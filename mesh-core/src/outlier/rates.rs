//! Rate-based outlier tests run once per interval: failure rate and
//! success-rate outliers (Envoy's `failure_percentage` and `success_rate`,
//! gRPC A50).

use std::net::SocketAddr;

use super::stats::IntervalCounts;
use crate::config::model::{FailureRateConfig, SuccessRateConfig};

/// The success-rate statistics of one interval, as Envoy computes them.
///
/// Rates are percentages (`100 x successes / requests`) of the endpoints
/// with enough requests; `stdev` is the *population* standard deviation
/// (divided by `n`, not `n - 1`), and an endpoint is an outlier when its rate
/// is strictly below `threshold = mean - stdev x stdev_factor`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SuccessRateStats {
    /// Endpoints that had enough requests to count.
    pub hosts: usize,
    /// Mean success rate, in percent.
    pub mean: f64,
    /// Population standard deviation of the success rates, in percent.
    pub stdev: f64,
    /// Ejection threshold: `mean - stdev x stdev_factor`, in percent.
    pub threshold: f64,
}

impl SuccessRateStats {
    /// Statistics over `rates` (percentages); `None` when `rates` is empty.
    pub fn compute(rates: &[f64], stdev_factor: f64) -> Option<Self> {
        if rates.is_empty() {
            return None;
        }
        let n = rates.len() as f64;
        let mean = rates.iter().sum::<f64>() / n;
        let variance = rates.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / n;
        let stdev = variance.sqrt();
        Some(Self {
            hosts: rates.len(),
            mean,
            stdev,
            threshold: mean - stdev * stdev_factor,
        })
    }
}

/// One healthy endpoint's counts for the interval just ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) addr: SocketAddr,
    pub(crate) counts: IntervalCounts,
}

/// Success rate in percent (`None` without requests).
fn success_percent(counts: IntervalCounts) -> Option<f64> {
    let total = counts.total();
    (total > 0).then(|| 100.0 * counts.successes as f64 / total as f64)
}

/// Endpoints whose success rate is an outlier, worst first, with the
/// statistics (when enough endpoints had enough requests to compute them).
pub(crate) fn success_rate_outliers(
    samples: &[Sample],
    config: &SuccessRateConfig,
) -> (Option<SuccessRateStats>, Vec<(SocketAddr, f64)>) {
    let min_requests = u64::from(config.min_requests.max(1));
    let rated: Vec<(SocketAddr, f64)> = samples
        .iter()
        .filter(|s| s.counts.total() >= min_requests)
        .filter_map(|s| success_percent(s.counts).map(|r| (s.addr, r)))
        .collect();
    if rated.len() < config.min_hosts.max(1) as usize {
        return (None, Vec::new());
    }
    let rates: Vec<f64> = rated.iter().map(|(_, r)| *r).collect();
    let Some(stats) = SuccessRateStats::compute(&rates, config.stdev_factor) else {
        return (None, Vec::new());
    };
    let mut outliers: Vec<(SocketAddr, f64)> = rated
        .into_iter()
        .filter(|(_, rate)| *rate < stats.threshold)
        .collect();
    outliers.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    (Some(stats), outliers)
}

/// Endpoints whose failure fraction is at or above the threshold (with
/// enough requests), worst first.
pub(crate) fn failure_rate_outliers(
    samples: &[Sample],
    config: &FailureRateConfig,
) -> Vec<(SocketAddr, f64)> {
    let min_requests = u64::from(config.min_requests.max(1));
    let mut outliers: Vec<(SocketAddr, f64)> = samples
        .iter()
        .filter(|s| s.counts.total() >= min_requests)
        .filter_map(|s| {
            let fraction = s.counts.failures as f64 / s.counts.total() as f64;
            (fraction >= config.threshold).then_some((s.addr, fraction))
        })
        .collect();
    outliers.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    outliers
}
