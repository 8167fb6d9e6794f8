//! Outlier detection: per-endpoint ejection on consecutive failures, failure rate and success-rate outliers, with growing ejection times, `max_ejected_percent` and a gradual return.
//!
//! Being built (issue "Foundation").
