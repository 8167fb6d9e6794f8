//! One endpoint's health: consecutive results against the thresholds.

/// What a result changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The endpoint became healthy (its first success, or
    /// `healthy_threshold` successes in a row after being unhealthy).
    Healthy,
    /// The endpoint became unhealthy (`unhealthy_threshold` failures in a row).
    Unhealthy,
}

/// The health of one endpoint, as its probe results say.
///
/// A new endpoint starts *unchecked* and unhealthy: it takes no traffic
/// until a probe passes, and one pass is enough while it has never been
/// healthy (Envoy does the same for a newly added host). After that, `unhealthy_threshold`
/// consecutive failures make it unhealthy and `healthy_threshold`
/// consecutive successes healthy again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthState {
    healthy: bool,
    checked: bool,
    ever_healthy: bool,
    successes: u32,
    failures: u32,
}

impl Default for HealthState {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthState {
    /// An unchecked endpoint.
    pub fn new() -> Self {
        Self {
            healthy: false,
            checked: false,
            ever_healthy: false,
            successes: 0,
            failures: 0,
        }
    }

    /// Whether the endpoint may take traffic.
    pub fn is_healthy(&self) -> bool {
        self.healthy
    }

    /// Whether any probe has answered yet.
    pub fn is_checked(&self) -> bool {
        self.checked
    }

    /// Records one probe result; returns the transition it caused, if any.
    /// Thresholds below 1 count as 1.
    pub fn record(
        &mut self,
        success: bool,
        healthy_threshold: u32,
        unhealthy_threshold: u32,
    ) -> Option<Transition> {
        self.checked = true;
        if success {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if !self.healthy && (!self.ever_healthy || self.successes >= healthy_threshold.max(1)) {
                self.healthy = true;
                self.ever_healthy = true;
                return Some(Transition::Healthy);
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.healthy && self.failures >= unhealthy_threshold.max(1) {
                self.healthy = false;
                return Some(Transition::Unhealthy);
            }
        }
        None
    }
}
