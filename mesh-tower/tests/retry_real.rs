//! RetryLayer against a real axum server that fails 30% of its requests
//! with 503, through a real hyper-util connection pool (no mocks on the
//! HTTP path).
//!
//! The server fails request slots 1, 4 and 7 of every 10 it serves: exactly
//! 30%, never two in a row, which is what a caller sees when a retry lands
//! on a healthy endpoint (the balancer sends retries to endpoints not yet
//! tried). Requests are sent one after another, so each retry takes the
//! next slot. Each 503 carries a 44 KB body, more than hyper reads with
//! the head, so a connection is only reused if the retry layer drains it.
//! (With *independent* 30% failures of one endpoint, three
//! attempts can give at best 1 - 0.3^3 = 97.3%: retries only help as much
//! as failures are uncorrelated.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness helpers

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::serve::ListenerExt;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mesh_core::config::{BackoffConfig, BudgetConfig, RetryConfig, RetryOn};
use mesh_core::retry::{RetryBudget, RetryPolicy};
use mesh_tower::BoxError;
use mesh_tower::body::MeshBody;
use mesh_tower::error::EndpointError;
use mesh_tower::ext::{Attempts, ServedBy};
use mesh_tower::retry::RetryLayer;
use tower::{Layer, Service, ServiceExt};

const REQUESTS: u32 = 2000;

/// The flaky server; aborted when dropped.
struct Server {
    addr: SocketAddr,
    served: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn flaky_server() -> Server {
    let served = Arc::new(AtomicU64::new(0));
    let counter = served.clone();
    let app = axum::Router::new().route(
        "/news",
        axum::routing::get(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if matches!(n % 10, 1 | 4 | 7) {
                    (StatusCode::SERVICE_UNAVAILABLE, "overloaded ".repeat(4000))
                } else {
                    (StatusCode::OK, String::from("headline"))
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicU64::new(0));
    let accepted = connections.clone();
    let listener = listener.tap_io(move |_| {
        accepted.fetch_add(1, Ordering::SeqCst);
    });
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server {
        addr,
        served,
        connections,
        task,
    }
}

/// The tiniest "balancer": every request goes to one fixed endpoint over a
/// pooled hyper-util client.
#[derive(Clone)]
struct Fixed {
    client: Client<HttpConnector, MeshBody>,
    addr: SocketAddr,
}

impl Service<Request<MeshBody>> for Fixed {
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Incoming>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<MeshBody>) -> Self::Future {
        let addr = self.addr;
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        *req.uri_mut() = format!("http://{addr}{path}").parse().unwrap();
        let fut = self.client.request(req);
        Box::pin(async move {
            match fut.await {
                Ok(mut resp) => {
                    resp.extensions_mut().insert(ServedBy(addr));
                    Ok(resp)
                }
                Err(e) => Err(Box::new(EndpointError {
                    endpoint: addr,
                    source: Box::new(e),
                }) as BoxError),
            }
        })
    }
}

struct Run {
    succeeded: u32,
    retries_hooked: u32,
    retries_served: u64,
    connections: u64,
    elapsed: Duration,
}

async fn run(budget: BudgetConfig) -> Run {
    let server = flaky_server().await;
    let client = Client::builder(TokioExecutor::new()).build_http::<MeshBody>();
    let hooked = Arc::new(AtomicU32::new(0));
    let counted = hooked.clone();
    let policy = RetryPolicy::new(&RetryConfig {
        attempts: 3,
        on: vec![RetryOn::Server5xx],
        backoff: BackoffConfig {
            base: Duration::from_millis(1),
            max: Duration::from_millis(5),
        },
        ..RetryConfig::default()
    });
    let svc = RetryLayer::new(Some(policy))
        .budget(Arc::new(RetryBudget::new(&budget).unwrap()))
        .on_retry(Arc::new(move |_: &Request<MeshBody>| {
            counted.fetch_add(1, Ordering::Relaxed);
        }))
        .layer(Fixed {
            client,
            addr: server.addr,
        });

    let start = Instant::now();
    let mut succeeded = 0;
    for _ in 0..REQUESTS {
        let req = Request::get("http://news-service/news")
            .body(MeshBody::empty())
            .unwrap();
        let resp = svc.clone().oneshot(req).await.unwrap();
        let attempts = resp.extensions().get::<Attempts>().unwrap().0;
        assert!((1..=3).contains(&attempts));
        let ok = resp.status() == StatusCode::OK;
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        if ok {
            assert_eq!(body, "headline");
            succeeded += 1;
        }
    }
    let elapsed = start.elapsed();
    let retries_served = server.served.load(Ordering::SeqCst) - u64::from(REQUESTS);
    Run {
        succeeded,
        retries_hooked: hooked.load(Ordering::Relaxed),
        retries_served,
        connections: server.connections.load(Ordering::SeqCst),
        elapsed,
    }
}

#[tokio::test]
async fn retries_turn_30_percent_503s_into_success_within_a_generous_budget() {
    let run = run(BudgetConfig {
        ratio: 1.0,
        min_per_second: 100,
        window: Duration::from_secs(10),
    })
    .await;
    let rate = f64::from(run.succeeded) / f64::from(REQUESTS);
    assert!(rate >= 0.999, "success rate {rate}");
    // Every failed attempt was retried once, and nothing else: of every
    // 10 slots, 7 are first attempts and 3 retries (a failed slot is always
    // followed by a good one), so 2000 x 3/7 = 857 retries.
    assert_eq!(u64::from(run.retries_hooked), run.retries_served);
    assert!(
        (850..=860).contains(&run.retries_served),
        "{} retries",
        run.retries_served
    );
    // The bodies of retried 503s were drained, so their connections went
    // back to the pool: requests sent one after another share one.
    assert!(run.connections <= 3, "{} connections", run.connections);
}

#[tokio::test]
async fn a_tight_budget_bounds_the_retries() {
    let budget = BudgetConfig {
        ratio: 0.05,
        min_per_second: 1,
        window: Duration::from_secs(10),
    };
    let run = run(budget).await;
    // In any window: retries <= 5% of its requests + 1/s x 10s. Over the
    // whole run (which may span several windows):
    let windows = run.elapsed.as_secs_f64() / budget.window.as_secs_f64();
    let bound = 0.05 * f64::from(REQUESTS) + 10.0 * (windows.ceil() + 1.0);
    assert!(
        (run.retries_served as f64) <= bound,
        "{} retries > {bound}",
        run.retries_served
    );
    assert!(run.retries_served > 0, "the budget allows some retries");
    assert_eq!(u64::from(run.retries_hooked), run.retries_served);
    // So most 503s went back to the caller.
    assert!(
        run.succeeded < 1600,
        "{} succeeded: the budget did not bind",
        run.succeeded
    );
}
