//! The router: the route and subset of a request, decided first.
//!
//! [`Router`] matches each request against the service's routes (path,
//! method, headers; first match wins, mesh-core's
//! [`Router`](mesh_core::route::Router)), picks a subset by the route's
//! weighted split (traffic split, canary, A/B) and records the decision in
//! the request's extensions: [`RouteInfo`] (the route's name, whole-call
//! timeout and retry policy, for the timeout, retry and metrics layers) and
//! [`Subset`] (for the balancer; set only when the route splits, absent
//! meaning all endpoints). A request no route takes fails with
//! [`NoRoute`].
//!
//! Everything is compiled once per config into a [`RouteTable`]: the
//! matchers, the split tables, and one `Arc<RoutePolicy>` per route, so a
//! request costs a few comparisons, one random draw and one `Arc` clone.
//! The table is swapped live (an `ArcSwap`) when the config changes;
//! requests already routed keep the decision they got.
//!
//! ```
//! use http::Request;
//! use mesh_core::config::ServiceConfig;
//! use mesh_tower::ext::{RouteInfo, Subset};
//! use mesh_tower::router::{RouteTable, RouterLayer};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let table = RouteTable::new("news", &ServiceConfig::default())?;
//! let svc = RouterLayer::new(table).layer(service_fn(|req: Request<()>| async move {
//!     let route = req.extensions().get::<RouteInfo>().map(|r| r.0.route.to_string());
//!     // No split: no `Subset`, the balancer uses all endpoints.
//!     assert_eq!(req.extensions().get::<Subset>(), None);
//!     Ok::<_, mesh_tower::BoxError>(http::Response::new(route))
//! }));
//! let response = svc.oneshot(Request::new(())).await?;
//! assert_eq!(response.into_body().as_deref(), Some("default"));
//! # Ok(())
//! # }
//! ```

use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use futures_util::future::Either;
use http::{Request, Response};
use mesh_core::config::ServiceConfig;
use mesh_core::route::{RequestView, RouteError};
use tower::{Layer, Service};

use crate::error::{BoxError, NoRoute};
use crate::ext::{RouteInfo, RoutePolicy, Subset};
use crate::service::rng::with_rng;

#[cfg(test)]
mod tests;

/// A service's routes, compiled: mesh-core's router plus one
/// [`RoutePolicy`] per route.
#[derive(Debug)]
pub struct RouteTable {
    service: Arc<str>,
    router: mesh_core::route::Router,
    policies: Box<[Arc<RoutePolicy>]>,
}

impl RouteTable {
    /// Compiles `config`'s routes for `service`.
    pub fn new(service: impl Into<Arc<str>>, config: &ServiceConfig) -> Result<Self, RouteError> {
        let service = service.into();
        let router = mesh_core::route::Router::new(config)?;
        let names: Vec<String> = router.route_names().map(str::to_string).collect();
        let policies = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let (timeout, retry) = route_policy(config, i);
                Arc::new(RoutePolicy {
                    service: service.clone(),
                    route: Arc::from(name.as_str()),
                    timeout,
                    retry,
                })
            })
            .collect();
        Ok(Self {
            service,
            router,
            policies,
        })
    }

    /// The service.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Routes `req`: its route's policy and the subset its split chose
    /// (`None`: all endpoints), or [`NoRoute`]. Shared by [`Router`] and
    /// the fused client ([`crate::fused`]).
    pub(crate) fn decide<B>(
        &self,
        req: &Request<B>,
    ) -> Result<(Option<Arc<RoutePolicy>>, Option<usize>), NoRoute> {
        let decision = with_rng(|rng| {
            self.router
                .route(&View(req), rng)
                .map(|d| (d.index(), d.subset()))
        });
        match decision {
            Ok((index, subset)) => Ok((self.policies.get(index).cloned(), subset)),
            Err(_) => Err(NoRoute {
                service: self.service.clone(),
                method: req.method().to_string(),
                path: req.uri().path().to_string(),
            }),
        }
    }

    /// The policy of each route, in order.
    pub fn policies(&self) -> &[Arc<RoutePolicy>] {
        &self.policies
    }
}

/// The effective timeout and retry policy of route `index` (the route's,
/// else the service's), as mesh-core's router resolves them.
fn route_policy(
    config: &ServiceConfig,
    index: usize,
) -> (
    Option<std::time::Duration>,
    Option<mesh_core::retry::RetryPolicy>,
) {
    let route = config.routes.get(index);
    let timeout = route.and_then(|r| r.timeout).or(config.timeout);
    let retry = route
        .and_then(|r| r.retry.as_ref())
        .or(config.retry.as_ref())
        .map(mesh_core::retry::RetryPolicy::new);
    (timeout, retry)
}

/// Applies [`Router`]; clones share the table, so a swap reaches them all.
#[derive(Clone, Debug)]
pub struct RouterLayer {
    table: Arc<ArcSwap<RouteTable>>,
}

impl RouterLayer {
    /// A layer routing by `table` (fixed).
    pub fn new(table: RouteTable) -> Self {
        Self {
            table: Arc::new(ArcSwap::from_pointee(table)),
        }
    }

    /// The table this layer routes by.
    pub(crate) fn table(&self) -> &Arc<ArcSwap<RouteTable>> {
        &self.table
    }

    /// A layer routing by whatever table `table` holds at each request
    /// (swap it to change the routes live).
    pub fn shared(table: Arc<ArcSwap<RouteTable>>) -> Self {
        Self { table }
    }
}

impl<S> Layer<S> for RouterLayer {
    type Service = Router<S>;

    fn layer(&self, inner: S) -> Router<S> {
        Router {
            inner,
            table: self.table.clone(),
        }
    }
}

/// Routes each request (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct Router<S> {
    inner: S,
    table: Arc<ArcSwap<RouteTable>>,
}

impl<S> Router<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// What mesh-core's matchers (routes, intentions' L7 permissions) read of an
/// HTTP request.
pub(crate) struct View<'a, B>(pub(crate) &'a Request<B>);

impl<B> RequestView for View<'_, B> {
    fn method(&self) -> &str {
        self.0.method().as_str()
    }

    fn path(&self) -> &str {
        self.0.uri().path()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.0.headers().get(name).and_then(|v| v.to_str().ok())
    }
}

impl<S, B, RB> Service<Request<B>> for Router<S>
where
    S: Service<Request<B>, Response = Response<RB>, Error = BoxError>,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = Either<S::Future, Ready<Result<Response<RB>, BoxError>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let decided = self.table.load().decide(&req);
        match decided {
            Ok((policy, subset)) => {
                if let Some(policy) = policy {
                    req.extensions_mut().insert(RouteInfo(policy));
                }
                // Absent means all endpoints: only a split is recorded (one
                // extension box fewer on most requests).
                if subset.is_some() {
                    req.extensions_mut().insert(Subset(subset));
                }
                Either::Left(self.inner.call(req))
            }
            Err(e) => Either::Right(ready(Err(Box::new(e)))),
        }
    }
}
