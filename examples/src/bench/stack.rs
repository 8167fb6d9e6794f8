//! Profiling aid (`--only stack --layers N`): the mesh client's layers
//! assembled by hand from the public API, cumulatively from the bottom
//! (0: connector only, 1: + balancer, 2: + per-try timeout, 3: + retry,
//! 4: + call timeout, 5: + metrics, the same instruments as the mesh), boxed
//! once as `MeshClient` boxes its stack. The router is left out: the
//! timeouts and retry use their layer defaults, the same values as the
//! service config. What each step adds is that layer's cost per request.

use http::{Request, Response};
use hyper::body::Incoming;
use mesh_core::Endpoint;
use mesh_core::config::{Protocol, RetryConfig, ServiceConfig};
use mesh_core::retry::{RetryBudget, RetryPolicy};
use mesh_tower::BoxError;
use mesh_tower::balance::{BalanceLayer, EndpointPool};
use mesh_tower::body::MeshBody;
use mesh_tower::connect::{ConnectConfig, Connector};
use mesh_tower::metrics::{Metrics, MetricsLayer};
use mesh_tower::retry::RetryLayer;
use mesh_tower::timeout::TimeoutLayer;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

/// The boxed stack.
pub type Stack = BoxCloneSyncService<Request<MeshBody>, Response<Incoming>, BoxError>;

/// Builds the stack with the `layers` lowest layers over `config`'s
/// service.
pub fn build(
    layers: u8,
    h2: bool,
    config: &ServiceConfig,
    endpoints: &[std::net::SocketAddr],
    metrics: &Metrics,
) -> Result<Stack, BoxError> {
    let protocol = if h2 { Protocol::Http2 } else { Protocol::Http };
    let connector = Connector::new(protocol, &ConnectConfig::default());
    if layers == 0 {
        return Ok(BoxCloneSyncService::new(connector));
    }
    let pool = EndpointPool::builder("stack", config).build()?;
    pool.apply(mesh_discovery::Update::Reset(
        endpoints.iter().map(|a| Endpoint::new(*a)).collect(),
    ));
    let retry_config: RetryConfig = config.retry.clone().unwrap_or_default();
    let budget = std::sync::Arc::new(RetryBudget::new(&retry_config.budget)?);
    let policy = RetryPolicy::new(&retry_config);
    let per_try = retry_config.per_try_timeout;
    let timeout = config.timeout;
    let balanced = ServiceBuilder::new()
        .layer(BalanceLayer::new(pool))
        .service(connector);

    Ok(match layers {
        1 => BoxCloneSyncService::new(balanced),
        2 => BoxCloneSyncService::new(
            ServiceBuilder::new()
                .layer(TimeoutLayer::per_try(per_try))
                .service(balanced),
        ),
        3 => BoxCloneSyncService::new(
            ServiceBuilder::new()
                .layer(RetryLayer::new(Some(policy)).budget(budget))
                .layer(TimeoutLayer::per_try(per_try))
                .service(balanced),
        ),
        4 => BoxCloneSyncService::new(
            ServiceBuilder::new()
                .layer(TimeoutLayer::call(timeout))
                .layer(RetryLayer::new(Some(policy)).budget(budget))
                .layer(TimeoutLayer::per_try(per_try))
                .service(balanced),
        ),
        _ => BoxCloneSyncService::new(
            ServiceBuilder::new()
                .layer(MetricsLayer::client(
                    metrics.clone(),
                    metrics.service("stack"),
                ))
                .layer(TimeoutLayer::call(timeout))
                .layer(RetryLayer::new(Some(policy)).budget(budget))
                .layer(TimeoutLayer::per_try(per_try))
                .service(balanced),
        ),
    })
}
