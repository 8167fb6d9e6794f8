//! Rules on retry and outlier-detection policy.

use std::time::Duration;

use super::super::duration::format_duration;
use super::super::error::ConfigErrorKind as K;
use super::super::model::{OutlierConfig, RetryConfig, RetryOn};
use super::super::tree::Path;
use super::Checker;
use crate::config::HealthCheckConfig;

pub(super) fn check_retry(c: &mut Checker, p: &Path, r: &RetryConfig, timeout: Option<Duration>) {
    c.range(p.key("attempts"), r.attempts, 1, 10);
    if let Some(per_try) = r.per_try_timeout {
        c.positive(p.key("per_try_timeout"), per_try);
        if let Some(t) = timeout.filter(|t| per_try > *t) {
            c.err(
                K::Conflict,
                p.key("per_try_timeout"),
                format!(
                    "must not exceed the timeout ({}), got {}",
                    format_duration(t),
                    format_duration(per_try)
                ),
            );
        }
    }
    for (i, on) in r.on.iter().enumerate() {
        if let RetryOn::Status(code) = on {
            c.range(p.key("on").index(i), *code, 100, 599);
        }
    }
    if r.backoff.base > r.backoff.max {
        c.err(
            K::Conflict,
            p.key("backoff").key("base"),
            format!(
                "must be <= max ({}), got {}",
                format_duration(r.backoff.max),
                format_duration(r.backoff.base)
            ),
        );
    }
    let b = p.key("budget");
    if !(r.budget.ratio.is_finite() && (0.0..=1000.0).contains(&r.budget.ratio)) {
        c.err(
            K::Invalid,
            b.key("ratio"),
            format!("must be between 0 and 1000, got {}", r.budget.ratio),
        );
    }
    if r.budget.window < Duration::from_secs(1) || r.budget.window > Duration::from_secs(60) {
        c.err(
            K::Invalid,
            b.key("window"),
            format!(
                "must be between 1s and 60s, got {}",
                format_duration(r.budget.window)
            ),
        );
    }
}

pub(super) fn check_outlier(c: &mut Checker, p: &Path, o: &OutlierConfig) {
    if o.consecutive_failures == Some(0) {
        c.err(
            K::Invalid,
            p.key("consecutive_failures"),
            "must be at least 1 (0 in a file, None in code, turns it off)",
        );
    }
    if let Some(fr) = &o.failure_rate
        && !(fr.threshold.is_finite() && (0.0..=1.0).contains(&fr.threshold))
    {
        c.err(
            K::Invalid,
            p.key("failure_rate").key("threshold"),
            format!("must be between 0 and 1, got {}", fr.threshold),
        );
    }
    if let Some(sr) = &o.success_rate
        && !(sr.stdev_factor.is_finite() && sr.stdev_factor > 0.0)
    {
        c.err(
            K::Invalid,
            p.key("success_rate").key("stdev_factor"),
            format!("must be a number > 0, got {}", sr.stdev_factor),
        );
    }
    c.positive(p.key("interval"), o.interval);
    c.positive(p.key("base_ejection"), o.base_ejection);
    if o.max_ejection < o.base_ejection {
        c.err(
            K::Conflict,
            p.key("max_ejection"),
            format!(
                "must be >= base_ejection ({}), got {}",
                format_duration(o.base_ejection),
                format_duration(o.max_ejection)
            ),
        );
    }
    c.range(p.key("max_ejected_percent"), o.max_ejected_percent, 0, 100);
}

pub(super) fn check_health(c: &mut Checker, p: &Path, h: &HealthCheckConfig) {
    c.positive(p.key("interval"), h.interval);
    c.positive(p.key("timeout"), h.timeout);
    if h.timeout > h.interval {
        c.err(
            K::Conflict,
            p.key("timeout"),
            format!(
                "must not exceed the interval ({}), got {}",
                format_duration(h.interval),
                format_duration(h.timeout)
            ),
        );
    }
    c.range(p.key("healthy_threshold"), h.healthy_threshold, 1, 1000);
    c.range(p.key("unhealthy_threshold"), h.unhealthy_threshold, 1, 1000);
    // A request target: `/`, then visible ASCII without a fragment.
    let valid_path =
        h.path.starts_with('/') && h.path.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
    if !valid_path {
        c.err(
            K::Invalid,
            p.key("path"),
            format!(
                "must be an absolute request path such as `/healthz`, got `{}`",
                h.path
            ),
        );
    }
}

/// Whether `n` is prime (trial division; `n` is capped by the caller).
pub(super) fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u64;
    while d.saturating_mul(d) <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}
