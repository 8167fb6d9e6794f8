//! Errors of [`OutlierDetector::new`](super::OutlierDetector::new).

use std::time::Duration;

/// An [`OutlierConfig`](crate::config::model::OutlierConfig) the detector
/// cannot run with. Each message names the field and what is allowed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum OutlierConfigError {
    /// `interval` is zero.
    #[error("outlier_detection.interval must be greater than zero")]
    ZeroInterval,
    /// `base_ejection` is zero.
    #[error("outlier_detection.base_ejection must be greater than zero")]
    ZeroBaseEjection,
    /// `max_ejection` is below `base_ejection`.
    #[error("outlier_detection.max_ejection ({max:?}) must be at least base_ejection ({base:?})")]
    MaxEjectionBelowBase {
        /// The configured `base_ejection`.
        base: Duration,
        /// The configured `max_ejection`.
        max: Duration,
    },
    /// `max_ejected_percent` is above 100.
    #[error("outlier_detection.max_ejected_percent must be 0..=100, got {0}")]
    MaxEjectedPercent(u32),
    /// `consecutive_failures` is `Some(0)`.
    #[error("outlier_detection.consecutive_failures must be at least 1 (omit it to turn it off)")]
    ZeroConsecutiveFailures,
    /// `failure_rate.threshold` is not in `(0.0, 1.0]`.
    #[error(
        "outlier_detection.failure_rate.threshold must be a fraction above 0.0 and at most 1.0, got {0}"
    )]
    FailureRateThreshold(f64),
    /// `success_rate.stdev_factor` is negative or not finite.
    #[error("outlier_detection.success_rate.stdev_factor must be a finite number >= 0, got {0}")]
    StdevFactor(f64),
}
