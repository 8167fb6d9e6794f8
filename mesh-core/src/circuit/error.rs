//! The fail-fast error of the concurrency limits.

use std::fmt;

/// Which concurrency limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// `max_requests`: requests in flight.
    Requests,
    /// `max_pending`: requests waiting for an endpoint or a connection.
    Pending,
}

impl Limit {
    /// The config field that sets this limit (`max_requests` / `max_pending`).
    pub fn field(self) -> &'static str {
        match self {
            Limit::Requests => "max_requests",
            Limit::Pending => "max_pending",
        }
    }
}

/// A request was refused because a concurrency limit is reached.
///
/// Displays as `circuit open: 1024 requests in flight (max_requests)` or
/// `circuit open: 1024 requests pending (max_pending)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub struct CircuitOpen {
    limit: Limit,
    max: u32,
}

impl CircuitOpen {
    /// An error for `limit`, whose configured value is `max`.
    pub fn new(limit: Limit, max: u32) -> Self {
        Self { limit, max }
    }

    /// Which limit refused the request.
    pub fn limit(&self) -> Limit {
        self.limit
    }

    /// The configured value of that limit when the request was refused.
    pub fn max(&self) -> u32 {
        self.max
    }
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.limit {
            Limit::Requests => "requests in flight",
            Limit::Pending => "requests pending",
        };
        write!(
            f,
            "circuit open: {} {what} ({})",
            self.max,
            self.limit.field()
        )
    }
}
