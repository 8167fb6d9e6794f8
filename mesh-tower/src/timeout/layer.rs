//! [`TimeoutLayer`].

use std::time::Duration;

use tower::Layer;

use super::Timeout;
use crate::error::TimeoutKind;

/// Wraps services in a call or per-try [`Timeout`].
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    kind: TimeoutKind,
    default: Option<Duration>,
}

// === impl TimeoutLayer ===

impl TimeoutLayer {
    /// The whole call's timeout: the request's route `timeout` if the router
    /// set [`RouteInfo`](crate::ext::RouteInfo) (a route without one has no
    /// timeout), else `default`. Sets the [`Deadline`](crate::ext::Deadline)
    /// extension (keeping an earlier one) and fails with
    /// [`Elapsed { kind: Call }`](crate::error::Elapsed). `None` and no
    /// route timeout: no timer at all.
    pub fn call(default: Option<Duration>) -> Self {
        Self {
            kind: TimeoutKind::Call,
            default,
        }
    }

    /// Each attempt's timeout: the route's retry `per_try_timeout` if the
    /// router set [`RouteInfo`](crate::ext::RouteInfo), else `default`;
    /// never longer than what is left of the
    /// [`Deadline`](crate::ext::Deadline). Fails with
    /// [`Elapsed { kind: PerTry }`](crate::error::Elapsed), which the retry
    /// policy treats as a per-try timeout (retried under `reset`, `5xx` and
    /// `gateway-error`).
    pub fn per_try(default: Option<Duration>) -> Self {
        Self {
            kind: TimeoutKind::PerTry,
            default,
        }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        match self.kind {
            TimeoutKind::Call => Timeout::call(inner, self.default),
            TimeoutKind::PerTry => Timeout::per_try(inner, self.default),
        }
    }
}
