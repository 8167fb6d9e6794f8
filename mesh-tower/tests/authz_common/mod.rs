//! Shared by the authorization tests: a real axum server behind the
//! authorization layer, a test identity layer, a plain hyper client and a
//! Prometheus-text reader for the counters.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::Request;
use axum::routing::any;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mesh_core::MeshConfig;
use mesh_core::config::{Format, parse_str};
use mesh_core::identity::SpiffeId;
use mesh_tower::authz::AuthzLayer;
use mesh_tower::ext::PeerIdentity;

/// The header the test client names its identity with (a stand-in for the
/// mTLS acceptor): a SPIFFE ID, or `none` for `PeerIdentity(None)`; absent:
/// no `PeerIdentity` extension at all.
pub const PEER_HEADER: &str = "x-test-peer";

/// The seed example's config file.
pub fn seed_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mesh.yaml")
}

/// The seed example's config, parsed.
pub fn seed_config() -> MeshConfig {
    let text = std::fs::read_to_string(seed_path()).unwrap();
    parse_str(&text, Format::Yaml, "mesh.yaml").unwrap()
}

/// `spiffe://mesh.local/ns/default/svc/<name>`.
pub fn id(name: &str) -> String {
    SpiffeId::for_service("mesh.local", "default", name)
        .unwrap()
        .to_string()
}

/// Turns [`PEER_HEADER`] into the `PeerIdentity` extension, as the mTLS
/// acceptor will.
async fn peer_from_header(mut req: Request) -> Request {
    let peer = req
        .headers()
        .get(PEER_HEADER)
        .map(|v| v.to_str().unwrap().to_string());
    match peer.as_deref() {
        None => {}
        Some("none") => {
            req.extensions_mut().insert(PeerIdentity(None));
        }
        Some(s) => {
            req.extensions_mut()
                .insert(PeerIdentity(Some(SpiffeId::parse(s).unwrap())));
        }
    }
    req
}

/// A running server: its address, how many requests reached the handler,
/// and its stop switch (the server ends when this is dropped).
pub struct Server {
    pub addr: SocketAddr,
    pub handled: Arc<AtomicUsize>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Server {
    pub fn handled(&self) -> usize {
        self.handled.load(Ordering::SeqCst)
    }
}

/// Serves every path and method ("ok") behind `authz` and the test identity
/// layer, on 127.0.0.1:0.
pub async fn serve(authz: AuthzLayer) -> Server {
    let handled = Arc::new(AtomicUsize::new(0));
    let count = handled.clone();
    let app = Router::new()
        .fallback(any(move || {
            let count = count.clone();
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        }))
        .layer(authz)
        .layer(axum::middleware::map_request(peer_from_header));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Server {
        addr,
        handled,
        _stop: stop,
    }
}

/// A plain HTTP/1.1 client.
pub fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends `method path` as `peer` (see [`PEER_HEADER`]); returns the status,
/// headers and body.
pub async fn call(
    server: &Server,
    peer: Option<&str>,
    method: &str,
    path: &str,
) -> (http::StatusCode, http::HeaderMap, String) {
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", server.addr));
    if let Some(p) = peer {
        req = req.header(PEER_HEADER, p);
    }
    let res = client()
        .request(req.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

/// Prometheus text: the sum of series `name` whose labels include `want`.
pub fn counter(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    let mut sum = 0.0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (n, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if n != name {
            continue;
        }
        let mut map = BTreeMap::new();
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once("=\"").unwrap();
            map.insert(k.to_string(), v.trim_end_matches('"').to_string());
        }
        if want
            .iter()
            .all(|(k, v)| map.get(*k).map(String::as_str).unwrap_or("") == *v)
        {
            sum += value.parse::<f64>().unwrap();
        }
    }
    sum
}
