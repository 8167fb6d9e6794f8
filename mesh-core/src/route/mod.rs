//! Routing: match a request's path, method and headers against a service's
//! routes (first match wins) and pick a subset by the route's weighted split.
//!
//! A [`Router`] is compiled once per service config ([`Router::new`]):
//! regexes are compiled, split weights are summed into cumulative tables
//! ([`SplitTable`]), subset names are resolved to indices ([`Subsets`]), and
//! each route's effective policy is resolved (a route's `timeout` and `retry`
//! override the service's). Per request, [`Router::route`] walks the routes
//! in order and returns a [`RouteDecision`] that borrows from the router:
//! no allocation, no lock.
//!
//! With no routes configured, every request takes one implicit catch-all
//! route to all endpoints (named [`DEFAULT_ROUTE_NAME`]). With routes
//! configured, a request no route takes is refused with [`NoRouteMatch`] (as
//! Envoy answers 404 "no route").
//!
//! ```
//! use mesh_core::config::{PathMatch, RouteConfig, RouteMatch, ServiceConfig};
//! use mesh_core::route::{Router, SimpleRequest};
//! use rand::SeedableRng;
//!
//! let mut service = ServiceConfig::default();
//! service.subsets.insert("v1".into(), [("version".into(), "v1".into())].into());
//! service.subsets.insert("v2".into(), [("version".into(), "v2".into())].into());
//! service.routes.push(RouteConfig {
//!     name: Some("api".into()),
//!     matches: RouteMatch { path: Some(PathMatch::Prefix("/api/".into())), ..Default::default() },
//!     split: [("v1".to_string(), 90), ("v2".to_string(), 10)].into(),
//!     ..Default::default()
//! });
//! let router = Router::new(&service)?;
//! let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
//! let decision = router.route(&SimpleRequest::new("GET", "/api/news"), &mut rng)?;
//! assert_eq!(decision.name(), "api");
//! assert!(matches!(decision.subset_name(), Some("v1" | "v2")));
//! assert!(router.route(&SimpleRequest::new("GET", "/other"), &mut rng).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod index;
pub mod matcher;
mod split;
mod subset;

#[cfg(test)]
mod tests;

use std::time::Duration;

use rand::Rng;

use crate::config::{RetryConfig, ServiceConfig};
use crate::retry::RetryPolicy;

pub use matcher::{MatcherError, RequestMatcher, RequestView, SimpleRequest};
pub use split::SplitTable;
pub use subset::Subsets;

/// The name of the implicit catch-all route of a service without routes.
pub const DEFAULT_ROUTE_NAME: &str = "default";

/// A service's routes could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// A route's matcher has a regex that does not compile.
    #[error("route {route}: {source}")]
    Matcher {
        /// The route's name (or index).
        route: String,
        /// The regex error.
        #[source]
        source: MatcherError,
    },
    /// A route's split names a subset the service does not declare.
    #[error("route {route}: split names unknown subset {subset:?}")]
    UnknownSubset {
        /// The route's name (or index).
        route: String,
        /// The subset named in the split.
        subset: String,
    },
    /// A route's split is not empty but every weight in it is zero.
    #[error("route {route}: every split weight is zero")]
    ZeroSplit {
        /// The route's name (or index).
        route: String,
    },
}

/// No route takes this request (the service has routes, none matched).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no route matches the request")]
pub struct NoRouteMatch;

/// One compiled route.
#[derive(Debug, Clone)]
struct CompiledRoute {
    name: Box<str>,
    matcher: RequestMatcher,
    /// `None`: all endpoints of the service.
    split: Option<SplitTable>,
    timeout: Option<Duration>,
    retry: Option<RetryConfig>,
    retry_policy: Option<RetryPolicy>,
}

/// A service's compiled routes.
#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<CompiledRoute>,
    /// Present when there are more than [`LINEAR_MAX`] routes.
    index: Option<index::RouteIndex>,
    subsets: Subsets,
    implicit: bool,
}

/// Up to this many routes are tried one by one; more are indexed (by path
/// prefix and exact header value, see `index.rs`), so matching cost grows
/// with the request, not with the number of routes.
pub const LINEAR_MAX: usize = 4;

/// Where one request goes: the route that took it, the subset picked by the
/// route's split, and the route's effective timeout and retry policy.
#[derive(Debug, Clone, Copy)]
pub struct RouteDecision<'a> {
    index: usize,
    route: &'a CompiledRoute,
    subset: Option<usize>,
    subsets: &'a Subsets,
}

// === impl Router ===

impl Router {
    /// Compiles the routes of `service`.
    pub fn new(service: &ServiceConfig) -> Result<Self, RouteError> {
        let subsets = Subsets::new(service);
        if service.routes.is_empty() {
            let route = CompiledRoute {
                name: Box::from(DEFAULT_ROUTE_NAME),
                matcher: RequestMatcher::any(),
                split: None,
                timeout: service.timeout,
                retry: service.retry.clone(),
                retry_policy: service.retry.as_ref().map(RetryPolicy::new),
            };
            return Ok(Self {
                routes: vec![route],
                index: None,
                subsets,
                implicit: true,
            });
        }
        let routes = service
            .routes
            .iter()
            .enumerate()
            .map(|(index, rc)| {
                let name: Box<str> = match &rc.name {
                    Some(n) => Box::from(n.as_str()),
                    None => index.to_string().into_boxed_str(),
                };
                let matcher =
                    RequestMatcher::new(&rc.matches).map_err(|source| RouteError::Matcher {
                        route: name.to_string(),
                        source,
                    })?;
                let split = if rc.split.is_empty() {
                    None
                } else {
                    let weights = rc
                        .split
                        .iter()
                        .map(|(subset, &w)| {
                            subsets.index_of(subset).map(|i| (i, w)).ok_or_else(|| {
                                RouteError::UnknownSubset {
                                    route: name.to_string(),
                                    subset: subset.clone(),
                                }
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    Some(
                        SplitTable::new(weights).ok_or_else(|| RouteError::ZeroSplit {
                            route: name.to_string(),
                        })?,
                    )
                };
                let retry = rc.retry.clone().or_else(|| service.retry.clone());
                Ok(CompiledRoute {
                    name,
                    matcher,
                    split,
                    timeout: rc.timeout.or(service.timeout),
                    retry_policy: retry.as_ref().map(RetryPolicy::new),
                    retry,
                })
            })
            .collect::<Result<Vec<_>, RouteError>>()?;
        let index = if routes.len() > LINEAR_MAX {
            index::RouteIndex::new(&service.routes)
        } else {
            None
        };
        Ok(Self {
            routes,
            index,
            subsets,
            implicit: false,
        })
    }

    /// Routes `req`: the first route whose matcher takes it wins, and its
    /// split picks a subset with `rng`.
    pub fn route<R, G>(&self, req: &R, rng: &mut G) -> Result<RouteDecision<'_>, NoRouteMatch>
    where
        R: RequestView + ?Sized,
        G: Rng + ?Sized,
    {
        let index = match &self.index {
            Some(idx) => idx.first_match(
                req.path(),
                |name| req.header(name),
                |i| self.routes.get(i).is_some_and(|r| r.matcher.matches(req)),
            ),
            None => self.first_match_linear(req),
        }
        .ok_or(NoRouteMatch)?;
        let route = self.routes.get(index).ok_or(NoRouteMatch)?;
        Ok(RouteDecision {
            index,
            route,
            subset: route.split.as_ref().map(|s| s.pick(rng)),
            subsets: &self.subsets,
        })
    }

    /// The first route taking `req`, trying every route in order.
    fn first_match_linear<R: RequestView + ?Sized>(&self, req: &R) -> Option<usize> {
        self.routes.iter().position(|r| r.matcher.matches(req))
    }

    /// The service's subsets; [`RouteDecision::subset`] indexes into them.
    pub fn subsets(&self) -> &Subsets {
        &self.subsets
    }

    /// How many routes there are (1 for the implicit catch-all).
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are no routes (never: a router has at least the
    /// implicit catch-all).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Whether the only route is the implicit catch-all (no routes configured).
    pub fn is_implicit(&self) -> bool {
        self.implicit
    }

    /// The route names, in order (for metrics registration).
    pub fn route_names(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.routes.iter().map(|r| &*r.name)
    }

    /// The split table of route `index`, if it has one.
    pub fn split(&self, index: usize) -> Option<&SplitTable> {
        self.routes.get(index).and_then(|r| r.split.as_ref())
    }
}

// === impl RouteDecision ===

impl<'a> RouteDecision<'a> {
    /// The index of the route in the service's routes (0 for the implicit
    /// catch-all).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The route's name: its configured name, else its index as text, else
    /// [`DEFAULT_ROUTE_NAME`] for the implicit catch-all.
    pub fn name(&self) -> &'a str {
        &self.route.name
    }

    /// The picked subset's index in [`Router::subsets`]; `None` means all
    /// endpoints of the service.
    pub fn subset(&self) -> Option<usize> {
        self.subset
    }

    /// The picked subset's name; `None` means all endpoints.
    pub fn subset_name(&self) -> Option<&'a str> {
        self.subset.and_then(|i| self.subsets.name(i))
    }

    /// The effective whole-call timeout: the route's, else the service's.
    pub fn timeout(&self) -> Option<Duration> {
        self.route.timeout
    }

    /// The effective retry config: the route's, else the service's. `None`:
    /// one attempt only.
    pub fn retry(&self) -> Option<&'a RetryConfig> {
        self.route.retry.as_ref()
    }

    /// The effective retry config, compiled.
    pub fn retry_policy(&self) -> Option<&'a RetryPolicy> {
        self.route.retry_policy.as_ref()
    }
}
