//! Helpers: a mesh from YAML, sending requests, tallies, background load,
//! bounded waits.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use mesh_core::config::{Format, parse_str};
use mesh_tower::ext::{Attempts, ServedBy};
use mesh_tower::{BoxError, Mesh, MeshClient};
use tokio::time::Instant;
use tower::ServiceExt;

/// A mesh with the config `yaml` (parsed and validated as users' files are).
pub fn mesh(yaml: &str) -> Mesh {
    let config = parse_str(yaml, Format::Yaml, "test.yaml").unwrap();
    Mesh::builder().config(config).build().unwrap()
}

/// One answered request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The upstream's `x-upstream` label.
    pub label: String,
    /// The endpoint that served it (ServedBy).
    pub served_by: Option<SocketAddr>,
    /// Attempts it took.
    pub attempts: u32,
}

/// Sends `GET http://SERVICE/path` and reads the body.
pub async fn get(client: &MeshClient, path: &str) -> Result<Reply, BoxError> {
    let uri = format!("http://{}{path}", client.service());
    let req = http::Request::get(uri).body(Empty::<Bytes>::new()).unwrap();
    let resp = client.clone().oneshot(req).await?;
    let status = resp.status().as_u16();
    let label = resp
        .headers()
        .get("x-upstream")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let served_by = resp.extensions().get::<ServedBy>().map(|s| s.0);
    let attempts = resp.extensions().get::<Attempts>().map_or(1, |a| a.0);
    resp.into_body().collect().await?;
    Ok(Reply {
        status,
        label,
        served_by,
        attempts,
    })
}

/// What a batch of requests got.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Requests sent.
    pub requests: u64,
    /// 2xx answers.
    pub ok: u64,
    /// Answers per upstream label.
    pub labels: BTreeMap<String, u64>,
    /// Answers per status.
    pub statuses: BTreeMap<u16, u64>,
    /// Errors per kind (`mesh_tower::error::ErrorKind::as_str`).
    pub errors: BTreeMap<&'static str, u64>,
    /// Sum of attempts - 1.
    pub retries: u64,
    /// Slowest request.
    pub max_latency: Duration,
    /// Answers without a ServedBy extension.
    pub unattributed: u64,
}

impl Tally {
    /// Records one request's result.
    pub fn record(&mut self, result: &Result<Reply, BoxError>, latency: Duration) {
        self.requests += 1;
        self.max_latency = self.max_latency.max(latency);
        match result {
            Ok(r) => {
                if (200..300).contains(&r.status) {
                    self.ok += 1;
                }
                *self.labels.entry(r.label.clone()).or_default() += 1;
                *self.statuses.entry(r.status).or_default() += 1;
                self.retries += u64::from(r.attempts.saturating_sub(1));
                if r.served_by.is_none() {
                    self.unattributed += 1;
                }
            }
            Err(e) => {
                let e: &(dyn std::error::Error + 'static) = e.as_ref();
                *self
                    .errors
                    .entry(mesh_tower::error::kind(e).as_str())
                    .or_default() += 1;
            }
        }
    }

    /// Adds another tally.
    pub fn merge(&mut self, other: &Tally) {
        self.requests += other.requests;
        self.ok += other.ok;
        for (k, v) in &other.labels {
            *self.labels.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.statuses {
            *self.statuses.entry(*k).or_default() += v;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.retries += other.retries;
        self.max_latency = self.max_latency.max(other.max_latency);
        self.unattributed += other.unattributed;
    }

    /// Share of the answers `label` served.
    pub fn share(&self, label: &str) -> f64 {
        let answered: u64 = self.labels.values().sum();
        self.labels.get(label).copied().unwrap_or(0) as f64 / answered.max(1) as f64
    }

    /// Requests that did not get a 2xx.
    pub fn failed(&self) -> u64 {
        self.requests - self.ok
    }
}

/// Sends `n` requests to `/` with `concurrency` workers.
pub async fn blast(client: &MeshClient, n: u64, concurrency: usize) -> Tally {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let start = Instant::now();
                let result = get(&client, "/").await;
                tally.record(&result, start.elapsed());
            }
            tally
        }));
    }
    let mut total = Tally::default();
    for t in tasks {
        total.merge(&t.await.unwrap());
    }
    assert_eq!(total.requests, n);
    total
}

/// Background load until [`Load::finish`], bounded to `limit` requests per
/// worker and 60 s.
pub struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Tally>>,
}

impl Load {
    /// Starts `concurrency` workers sending to `/`, each pausing `pause`
    /// between requests.
    pub fn start(client: &MeshClient, concurrency: usize, pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(60);
        let tasks = (0..concurrency)
            .map(|_| {
                let client = client.clone();
                let stop = stop.clone();
                let sent = sent.clone();
                tokio::spawn(async move {
                    let mut tally = Tally::default();
                    for _ in 0..200_000 {
                        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                            break;
                        }
                        let start = Instant::now();
                        let result = get(&client, "/").await;
                        tally.record(&result, start.elapsed());
                        sent.fetch_add(1, Ordering::Relaxed);
                        if !pause.is_zero() {
                            tokio::time::sleep(pause).await;
                        }
                    }
                    tally
                })
            })
            .collect();
        Load { stop, sent, tasks }
    }

    /// Requests finished so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Stops the workers (requests in flight finish) and sums up.
    pub async fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = Tally::default();
        for t in self.tasks {
            total.merge(&t.await.unwrap());
        }
        total
    }
}

/// Polls `cond` every 50 ms until it holds; fails after `limit`.
pub async fn eventually(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `share` is within `tolerance` of `expected`, with a message.
#[track_caller]
pub fn assert_share(what: &str, share: f64, expected: f64, tolerance: f64) {
    assert!(
        (share - expected).abs() <= tolerance,
        "{what}: share {share:.4}, expected {expected} +- {tolerance}"
    );
}
