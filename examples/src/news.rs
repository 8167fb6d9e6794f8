//! The `news-service` handlers: `GET /news` answers a few headlines with the
//! instance's version and address, so callers see which instance served
//! them; failure injection ([`Faults`]) applies to it. `GET /healthz` is
//! never faulty.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use mesh_tower::metrics::prometheus::Exposition;

use crate::faults::{Fault, Faults};

/// Response header: the instance's `NEWS_VERSION`.
pub const VERSION_HEADER: HeaderName = HeaderName::from_static("x-mesh-version");
/// Response header: the instance's listen address.
pub const INSTANCE_HEADER: HeaderName = HeaderName::from_static("x-mesh-instance");

/// The body of `GET /news`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct News {
    /// The serving instance's version (`NEWS_VERSION`).
    pub version: String,
    /// The serving instance's listen address.
    pub address: String,
    /// Headlines.
    pub items: Vec<Story>,
}

/// One headline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Story {
    /// Its id.
    pub id: u32,
    /// Its title.
    pub title: String,
}

/// Who this instance is, and how faulty.
#[derive(Debug, Clone)]
pub struct Instance {
    /// `NEWS_VERSION`, e.g. `v1`.
    pub version: String,
    /// Where it listens.
    pub address: SocketAddr,
    /// Its failure injection.
    pub faults: Arc<Faults>,
}

/// The headlines every instance serves (v2 writes them in a livelier style).
fn stories(version: &str) -> Vec<Story> {
    let titles: [&str; 3] = if version == "v2" {
        [
            "Sidecars hate this one weird trick!",
            "Retries: why once more is often enough",
            "Ejected, then welcomed back: an endpoint's story",
        ]
    } else {
        [
            "Proxyless mesh removes a network hop",
            "Retries with budgets prevent retry storms",
            "Outlier detection ejects a flaky endpoint",
        ]
    };
    titles
        .iter()
        .zip(1..)
        .map(|(title, id)| Story {
            id,
            title: (*title).to_string(),
        })
        .collect()
}

/// The service's routes. Add [`mesh_tower::server::ServerLayer`] with
/// `Router::layer` on the result for golden signals.
pub fn router(instance: Instance) -> Router {
    Router::new()
        .route("/news", get(news))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(Arc::new(instance))
}

/// `GET /metrics` on the app port: the Prometheus text of `exposition`
/// (news-service adds it under mTLS, where intentions decide who may
/// scrape).
pub fn metrics_router(exposition: Exposition) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let exposition = exposition.clone();
            async move {
                match exposition.render() {
                    Ok(text) => (
                        [(
                            http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        text,
                    )
                        .into_response(),
                    Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
                }
            }
        }),
    )
}

async fn news(State(me): State<Arc<Instance>>) -> Response {
    let delay = me.faults.delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match me.faults.decide() {
        Fault::Hang => std::future::pending::<Response>().await,
        Fault::Fail => (StatusCode::SERVICE_UNAVAILABLE, "injected failure\n").into_response(),
        Fault::None => {
            let body = News {
                version: me.version.clone(),
                address: me.address.to_string(),
                items: stories(&me.version),
            };
            let mut response = Json(body).into_response();
            let headers = response.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&me.version) {
                headers.insert(VERSION_HEADER, v);
            }
            if let Ok(v) = HeaderValue::from_str(&me.address.to_string()) {
                headers.insert(INSTANCE_HEADER, v);
            }
            response
        }
    }
}
