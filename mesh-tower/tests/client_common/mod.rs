//! Shared by the `client_*` tests: real axum upstreams on 127.0.0.1:0 and a
//! bounded load loop through a `MeshClient`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use mesh_tower::MeshClient;
use mesh_tower::ext::ServedBy;
use tower::{Service, ServiceExt};

/// A running upstream: answers every request with its name and the Host it
/// saw; counts requests. Stopped on drop.
pub struct Upstream {
    pub addr: SocketAddr,
    pub name: &'static str,
    pub hits: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn upstream(name: &'static str) -> Upstream {
    upstream_with_delay(name, Duration::ZERO).await
}

/// An upstream that takes `delay` to answer (so requests are in flight).
pub async fn upstream_with_delay(name: &'static str, delay: Duration) -> Upstream {
    upstream_fn(name, move |_| (200, delay)).await
}

/// An upstream whose `n`-th request (from 0) is answered with the status
/// and after the delay `behave(n)` says. Requests are counted on arrival.
pub async fn upstream_fn(
    name: &'static str,
    behave: impl Fn(u64) -> (u16, Duration) + Send + Sync + 'static,
) -> Upstream {
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    let behave = Arc::new(behave);
    let app = Router::new().fallback(move |headers: HeaderMap| {
        let counter = counter.clone();
        let behave = behave.clone();
        async move {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let (status, delay) = behave(n);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let host = headers
                .get("host")
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
                .to_string();
            (
                http::StatusCode::from_u16(status).unwrap(),
                format!("{name} {host}"),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Upstream {
        addr,
        name,
        hits,
        task,
    }
}

pub fn get(uri: &str) -> http::Request<Empty<Bytes>> {
    http::Request::get(uri).body(Empty::new()).unwrap()
}

/// Sends `total` requests built by `make` with `concurrency` tasks; returns
/// the count per serving endpoint and the errors. Bounded by `limit`.
pub async fn load(
    client: &MeshClient,
    total: usize,
    concurrency: usize,
    limit: Duration,
    make: impl Fn(usize) -> http::Request<Empty<Bytes>> + Send + Sync + 'static,
) -> (HashMap<SocketAddr, u64>, Vec<String>) {
    let next = Arc::new(AtomicUsize::new(0));
    let make = Arc::new(make);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let mut client = client.clone();
        let next = next.clone();
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut counts: HashMap<SocketAddr, u64> = HashMap::new();
            let mut errors = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let result = async {
                    let response = ServiceExt::<http::Request<Empty<Bytes>>>::ready(&mut client)
                        .await?
                        .call(make(i))
                        .await?;
                    let served = response.extensions().get::<ServedBy>().copied();
                    let status = response.status();
                    response.into_body().collect().await?;
                    Ok::<_, mesh_tower::BoxError>((served, status))
                }
                .await;
                match result {
                    Ok((Some(ServedBy(addr)), status)) if status.is_success() => {
                        *counts.entry(addr).or_default() += 1;
                    }
                    Ok((served, status)) => errors.push(format!("{served:?} {status}")),
                    Err(e) => errors.push(format!("{e}")),
                }
            }
            (counts, errors)
        }));
    }
    let joined = tokio::time::timeout(limit, futures_util::future::join_all(tasks))
        .await
        .expect("load finished in time");
    let mut counts = HashMap::new();
    let mut errors = Vec::new();
    for r in joined {
        let (c, e) = r.unwrap();
        for (k, v) in c {
            *counts.entry(k).or_default() += v;
        }
        errors.extend(e);
    }
    (counts, errors)
}

pub async fn body_string(response: http::Response<hyper::body::Incoming>) -> String {
    String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

/// The share of `total` that `count` is.
pub fn share(count: u64, total: u64) -> f64 {
    count as f64 / total as f64
}
