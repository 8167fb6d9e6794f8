//! A real Prometheus scrapes our `/metrics` while an axum server behind
//! `ServerLayer` is called through a `MetricsLayer`-wrapped hyper client;
//! its query API must report exactly the calls made, with the right labels.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mesh_tests::prometheus::{self as prom, Prometheus};
use mesh_tower::BoxError;
use mesh_tower::ext::{RouteInfo, RoutePolicy, ServedBy};
use mesh_tower::metrics::prometheus::{pipeline, serve};
use mesh_tower::metrics::{Metrics, MetricsLayer, SCOPE};
use mesh_tower::server::ServerLayer;
use mesh_tower::trace::TraceContext;
use opentelemetry::metrics::MeterProvider;
use tower::{Layer, Service, ServiceExt};

const OK_CALLS: usize = 20;
const FAILED_CALLS: usize = 5;

async fn traced(req: Request) -> &'static str {
    if req.extensions().get::<TraceContext>().is_some() {
        "traced"
    } else {
        "untraced"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_client_and_server_golden_signals() {
    if !prom::available() {
        return;
    }
    let (provider, exposition) = pipeline(Some("app-ui")).unwrap();
    let metrics = Metrics::new(&provider.meter(SCOPE));

    // The upstream: a real axum server behind ServerLayer.
    let app = Router::new()
        .route("/news/{id}", get(traced))
        .route(
            "/fail",
            get(|| async { (http::StatusCode::SERVICE_UNAVAILABLE, "down") }),
        )
        .layer(ServerLayer::new(
            metrics.clone(),
            metrics.service("news-service"),
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
            .unwrap();
    });

    // Our /metrics.
    let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_server = serve(metrics_listener, exposition.clone()).unwrap();
    let metrics_addr = metrics_server.local_addr();

    // The caller: hyper client + what the balancer would add (ServedBy),
    // wrapped in MetricsLayer; the router's RouteInfo set on the request.
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let inner = tower::service_fn(move |req: http::Request<Empty<Bytes>>| {
        let client = client.clone();
        async move {
            let mut resp = client.request(req).await.map_err(BoxError::from)?;
            resp.extensions_mut().insert(ServedBy(upstream));
            Ok::<_, BoxError>(resp)
        }
    });
    let mut svc =
        MetricsLayer::client(metrics.clone(), metrics.service("news-service")).layer(inner);
    let route = RouteInfo(Arc::new(RoutePolicy {
        service: "news-service".into(),
        route: "news".into(),
        timeout: None,
        retry: None,
    }));
    for i in 0..OK_CALLS + FAILED_CALLS {
        let path = if i < OK_CALLS {
            format!("/news/{i}")
        } else {
            "/fail".into()
        };
        let mut req = http::Request::get(format!("http://{upstream}{path}"))
            .body(Empty::new())
            .unwrap();
        req.extensions_mut().insert(route.clone());
        // The caller is in a trace: the client sends a child of it.
        req.extensions_mut().insert(TraceContext {
            parent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .parse()
                .unwrap(),
            state: None,
        });
        let resp = svc.ready().await.unwrap().call(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        if i < OK_CALLS {
            assert_eq!(status, 200);
            assert_eq!(&body[..], b"traced", "traceparent injected and extracted");
        } else {
            assert_eq!(status, 503);
        }
    }

    // A real Prometheus scrapes /metrics and answers queries.
    let prometheus = tokio::task::spawn_blocking(move || {
        let p = Prometheus::start(&[metrics_addr]);
        p.wait_targets_up(Duration::from_secs(30));
        p
    })
    .await
    .unwrap();
    let ep: SocketAddr = upstream;
    let checks = [
        (
            format!(
                "sum(http_client_request_duration_seconds_count{{mesh_service=\"news-service\",\
                 http_route=\"news\",mesh_endpoint=\"{ep}\",http_request_method=\"GET\",\
                 http_response_status_code=\"200\"}})"
            ),
            OK_CALLS,
        ),
        (
            format!(
                "sum(http_client_request_duration_seconds_count{{mesh_service=\"news-service\",\
                 mesh_endpoint=\"{ep}\",http_response_status_code=\"503\"}})"
            ),
            FAILED_CALLS,
        ),
        (
            "sum(http_server_request_duration_seconds_count{mesh_service=\"news-service\",\
             http_route=\"/news/{id}\",http_request_method=\"GET\",\
             http_response_status_code=\"200\"})"
                .to_string(),
            OK_CALLS,
        ),
        (
            "sum(http_server_request_duration_seconds_count{http_route=\"/fail\",\
             http_response_status_code=\"503\"})"
                .to_string(),
            FAILED_CALLS,
        ),
        (
            "sum(http_client_request_duration_seconds_count)".to_string(),
            OK_CALLS + FAILED_CALLS,
        ),
        (
            "sum(http_client_active_requests{mesh_service=\"news-service\"})".to_string(),
            0,
        ),
        (
            "count(http_client_request_duration_seconds_bucket{le=\"0.0005\"})".to_string(),
            2,
        ),
    ];
    let prometheus = tokio::task::spawn_blocking(move || {
        for (expr, want) in &checks {
            prometheus.wait_for_value(expr, *want as f64, Duration::from_secs(20));
        }
        // The job label proves it came through a real scrape of our target.
        let up = prometheus.query("up{job=\"mesh\"}");
        assert_eq!(up.len(), 1);
        assert_eq!(up[0].1, 1.0);
        prometheus
    })
    .await
    .unwrap();

    drop(prometheus);
    metrics_server.shutdown().await;
    let _ = stop_tx.send(());
    server.await.unwrap();
    provider.shutdown().unwrap();
}
