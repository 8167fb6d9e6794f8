use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::routing::get;
use http::{HeaderValue, StatusCode};
use tower::ServiceExt;

use super::*;
use crate::metrics::tests::{Scrape, setup};
use crate::trace::{TRACEPARENT, TraceContext};

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const COUNT: &str = "http_server_request_duration_seconds_count";
const ACTIVE: &str = "http_server_active_requests";

async fn trace_of(req: Request) -> String {
    match req.extensions().get::<TraceContext>() {
        Some(ctx) => ctx.parent.trace_id.to_string(),
        None => "none".into(),
    }
}

fn app(metrics: &Metrics) -> Router {
    Router::new()
        .route("/news/{id}", get(trace_of))
        .layer(ServerLayer::new(metrics.clone(), metrics.service("news")))
}

async fn body(resp: http::Response<Body>) -> String {
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn records_route_template_status_method_and_source() {
    let (_p, expo, metrics) = setup();
    let app = app(&metrics);
    let caller =
        mesh_core::identity::SpiffeId::parse("spiffe://mesh.local/ns/default/svc/app-ui").unwrap();
    for id in 0..3 {
        let mut req = http::Request::get(format!("/news/{id}"))
            .header(TRACEPARENT, TP)
            .body(Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(crate::ext::PeerIdentity(Some(caller.clone())));
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        // The handler saw the extracted trace context.
        assert_eq!(body(resp).await, "4bf92f3577b34da6a3ce929d0e0e4736");
    }
    let s = Scrape::of(&expo);
    let labels = [
        ("mesh_service", "news"),
        ("http_route", "/news/{id}"),
        ("http_request_method", "GET"),
        ("http_response_status_code", "200"),
        ("mesh_source", caller.as_str()),
    ];
    assert_eq!(s.get(COUNT, &labels), 3.0);
    assert_eq!(s.get(ACTIVE, &[("mesh_service", "news")]), 0.0);
}

#[tokio::test]
async fn unmatched_paths_and_bad_trace_headers() {
    let (_p, expo, metrics) = setup();
    let app = app(&metrics);
    let resp = app
        .clone()
        .oneshot(http::Request::get("/nope").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    let mut req = http::Request::delete("/news/1")
        .body(Body::empty())
        .unwrap();
    req.headers_mut()
        .insert(TRACEPARENT, HeaderValue::from_static("00-zz-zz-01"));
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);

    let req = http::Request::get("/news/1")
        .header(
            TRACEPARENT,
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        )
        .body(Body::empty())
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(
        body(resp).await,
        "none",
        "a malformed traceparent is dropped"
    );

    let s = Scrape::of(&expo);
    assert_eq!(
        s.get(
            COUNT,
            &[("http_response_status_code", "404"), ("http_route", "")]
        ),
        1.0
    );
    assert_eq!(
        s.get(
            COUNT,
            &[
                ("http_response_status_code", "405"),
                ("http_request_method", "DELETE")
            ]
        ),
        1.0
    );
    assert_eq!(
        s.get(
            COUNT,
            &[("http_response_status_code", "200"), ("mesh_source", "")]
        ),
        1.0
    );
}

#[tokio::test]
async fn in_flight_while_the_handler_runs() {
    let (_p, expo, metrics) = setup();
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let slots = std::sync::Arc::new(parking_lot::Mutex::new(Some((entered_tx, release_rx))));
    let app = Router::new()
        .route(
            "/slow",
            get(move || {
                let slots = slots.clone();
                async move {
                    let taken = slots.lock().take();
                    if let Some((entered, release)) = taken {
                        let _ = entered.send(());
                        let _ = release.await;
                    }
                    "done"
                }
            }),
        )
        .layer(ServerLayer::new(metrics.clone(), metrics.service("news")));
    let call = tokio::spawn(app.oneshot(http::Request::get("/slow").body(Body::empty()).unwrap()));
    entered_rx.await.unwrap();
    assert_eq!(Scrape::of(&expo).get(ACTIVE, &[]), 1.0);
    release_tx.send(()).unwrap();
    assert_eq!(call.await.unwrap().unwrap().status(), StatusCode::OK);
    let s = Scrape::of(&expo);
    assert_eq!(s.get(ACTIVE, &[]), 0.0);
    assert_eq!(s.get(COUNT, &[("http_route", "/slow")]), 1.0);
}
