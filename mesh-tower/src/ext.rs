//! Request and response extensions: how the layers talk to each other.
//!
//! Each layer is usable alone, so they share nothing but these small types,
//! carried in `http::Extensions`:
//!
//! | extension | on | set by | read by |
//! | --- | --- | --- | --- |
//! | [`RouteInfo`] | request | router | timeout, retry, balancer, metrics |
//! | [`Subset`] | request | router (when the route splits) | balancer |
//! | [`Deadline`] | request | overall timeout | per-try timeout, retry |
//! | [`TriedEndpoints`] | request | retry (from the second attempt on) | balancer |
//! | [`AttemptEndpoint`] | request | a caller or layer that wants to know (a cell the balancer fills) | that caller |
//! | [`ServedBy`] | response | balancer | retry, metrics, the application |
//! | [`Attempts`] | response | retry | metrics, the application |
//! | [`PeerIdentity`] | request (server) | mTLS accept | authorization, server metrics, the application |
//!
//! A layer that finds no extension it reads falls back to its own config
//! (e.g. a `RetryLayer` used alone retries by the policy it was built with).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesh_core::retry::RetryPolicy;

/// The route a request took: set by the router, one `Arc` clone per request.
#[derive(Debug, Clone)]
pub struct RouteInfo(pub Arc<RoutePolicy>);

/// What the router decided for one route of one service, precomputed when
/// the config changes (nothing here is built per request).
#[derive(Debug)]
pub struct RoutePolicy {
    /// The upstream service.
    pub service: Arc<str>,
    /// The route's name (its config `name`, or its index), or `default`.
    pub route: Arc<str>,
    /// Whole-call timeout for this route (route override, else service).
    pub timeout: Option<Duration>,
    /// Retry policy for this route (route override, else service); `None`:
    /// one attempt.
    pub retry: Option<RetryPolicy>,
}

/// The subset a request was split to: set by the router next to
/// [`RouteInfo`] when the route splits its traffic (`None` or absent: all
/// endpoints of the service).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subset(pub Option<usize>);

/// When the whole call must be done: set by the overall timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(pub tokio::time::Instant);

impl Deadline {
    /// Time left until the deadline (zero once past).
    pub fn remaining(&self) -> Duration {
        self.0
            .saturating_duration_since(tokio::time::Instant::now())
    }
}

/// Endpoints earlier attempts of this request went to: the balancer avoids
/// them when another endpoint is available.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TriedEndpoints(pub Vec<SocketAddr>);

/// Where the current attempt went: a request-scoped cell the balancer fills
/// when it picks, for whoever inserted it. An attempt cut short by a timer
/// is dropped before it can say where it was; the cell still can. (The
/// per-try timeout needs no cell: the balancer tells it directly, within
/// its `call`, so that it names the endpoint in its error
/// ([`EndpointError`]) and the retry layer avoids that endpoint next time.)
///
/// [`EndpointError`]: crate::error::EndpointError
#[derive(Debug, Clone, Default)]
pub struct AttemptEndpoint(Arc<std::sync::OnceLock<SocketAddr>>);

impl AttemptEndpoint {
    /// An empty cell.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the endpoint (the first call wins).
    pub fn set(&self, endpoint: SocketAddr) {
        let _ = self.0.set(endpoint);
    }

    /// The endpoint, once picked.
    pub fn get(&self) -> Option<SocketAddr> {
        self.0.get().copied()
    }
}

/// The endpoint that served a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServedBy(pub SocketAddr);

/// How many attempts a response took (1 = no retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Attempts(pub u32);

/// Who is calling, on the server side: the seam between the transport and
/// the layers above it.
///
/// The mTLS acceptor inserts it into each request's extensions, with the
/// SPIFFE ID of the verified client certificate (`None`: plaintext or
/// permissive mode without a client certificate). The authorization layer
/// decides on it, [`crate::server::ServerLayer`] labels its metrics with it
/// (`mesh.source`), and handlers may read it. Absent: no identity layer is
/// installed (treated like `None`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerIdentity(pub Option<mesh_core::identity::SpiffeId>);
