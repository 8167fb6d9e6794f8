//! The load generator: a fixed number of tasks, each sending one request
//! after the other for a fixed time, recording each latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use mesh_tower::MeshClient;
use mesh_tower::body::MeshBody;
use tower::{Service, ServiceExt};

/// The plain hyper-util legacy client.
pub type PlainClient = Client<HttpConnector, Empty<Bytes>>;

/// A plain client: `TCP_NODELAY`, idle pool large enough for the load,
/// HTTP/2 prior knowledge when `h2`.
pub fn plain_client(h2: bool) -> PlainClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    plain_builder(h2).build(http)
}

/// The plain clients' pool settings (also the mTLS baseline's).
pub fn plain_builder(h2: bool) -> hyper_util::client::legacy::Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_max_idle_per_host(1024)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new());
    if h2 {
        builder.http2_only(true);
    }
    builder
}

/// Who sends the requests.
// Cloned once per load task, never moved per request: size is irrelevant,
// and boxing the plain client would add an indirection to the baseline only.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Target {
    /// The plain client to this URI (the server, or Envoy A).
    Plain(PlainClient, http::Uri),
    /// The plain client adding a fresh `traceparent` to each request (a
    /// new root trace, a never-indexed HPACK literal over HTTP/2), exactly
    /// the header the mesh client adds.
    PlainTraced(PlainClient, http::Uri),
    /// The plain client, round-robin over these URIs (the next index kept
    /// per request loop).
    PlainSpread(PlainClient, Arc<[http::Uri]>, usize),
    /// The mesh client (URI names the service).
    Mesh(MeshClient, http::Uri),
    /// A hand-assembled part of the mesh stack (profiling).
    Stack(super::stack::Stack, http::Uri),
}

/// One request and its whole body. `Ok(false)`: not a 200.
async fn send(target: &mut Target) -> Result<bool, mesh_tower::BoxError> {
    let response = match target {
        Target::Plain(client, uri) => {
            let req = http::Request::get(uri.clone()).body(Empty::<Bytes>::new())?;
            client.request(req).await?
        }
        Target::PlainSpread(client, uris, next) => {
            let uri = uris
                .get(*next % uris.len().max(1))
                .cloned()
                .unwrap_or_default();
            *next = next.wrapping_add(1);
            let req = http::Request::get(uri).body(Empty::<Bytes>::new())?;
            client.request(req).await?
        }
        Target::PlainTraced(client, uri) => {
            let mut req = http::Request::get(uri.clone()).body(Empty::<Bytes>::new())?;
            // The mesh's own injection: a new sampled root, never indexed.
            mesh_tower::trace::inject(
                &mut req,
                &mesh_tower::trace::RandomIds,
                mesh_tower::trace::TraceFlags::SAMPLED,
            );
            client.request(req).await?
        }
        Target::Mesh(client, uri) => {
            let req = http::Request::get(uri.clone()).body(Empty::<Bytes>::new())?;
            ServiceExt::<http::Request<Empty<Bytes>>>::ready(client)
                .await?
                .call(req)
                .await?
        }
        Target::Stack(stack, uri) => {
            let req = http::Request::get(uri.clone()).body(MeshBody::empty())?;
            stack.ready().await?.call(req).await?
        }
    };
    let ok = response.status() == http::StatusCode::OK;
    response.into_body().collect().await?;
    Ok(ok)
}

/// Sends until one request succeeds (or `within` passes).
pub async fn wait_ready(target: &Target, within: Duration) -> bool {
    let mut target = target.clone();
    let end = Instant::now() + within;
    while Instant::now() < end {
        if matches!(send(&mut target).await, Ok(true)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// What one round measured.
#[derive(Default)]
pub struct Round {
    /// Latencies of successful requests, microseconds.
    pub latencies_us: Vec<u32>,
    /// Failed requests (errors or non-200).
    pub errors: u64,
    /// Wall time from start until the last task stopped.
    pub elapsed: Duration,
}

/// Runs `concurrency` tasks against `target` for `duration`.
pub async fn run(target: &Target, concurrency: usize, duration: Duration) -> Round {
    let start = Instant::now();
    let deadline = Arc::new(start + duration);
    let mut tasks = Vec::with_capacity(concurrency);
    for i in 0..concurrency {
        let mut target = target.clone();
        // Spread loops start on different ports.
        if let Target::PlainSpread(_, _, next) = &mut target {
            *next = i;
        }
        let deadline = deadline.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= *deadline {
                    break;
                }
                match send(&mut target).await {
                    Ok(true) => {
                        let us = t0.elapsed().as_micros();
                        latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut round = Round::default();
    for task in tasks {
        if let Ok((latencies, errors)) = task.await {
            round.latencies_us.extend(latencies);
            round.errors += errors;
        }
    }
    round.elapsed = start.elapsed();
    round
}

/// The `q` quantile (0..=1) of sorted values.
pub fn quantile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    sorted.get(i).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_one_to_hundred() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 50);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&v, 1.0), 100);
        assert_eq!(quantile(&[], 0.5), 0);
    }
}
