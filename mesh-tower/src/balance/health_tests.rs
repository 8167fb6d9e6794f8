//! Active health checks driving the pool's readiness, with a fake probe and
//! tokio's paused clock: thresholds, timing, new endpoints, panic mode,
//! task lifetime.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http::{Request, Response};
use mesh_core::Endpoint;
use mesh_core::config::{HealthCheckConfig, ServiceConfig};
use mesh_discovery::Update;
use parking_lot::Mutex;
use tokio::time::sleep;
use tower::{Service, ServiceExt};
use tower_test::mock;

use super::*;
use crate::body::MeshBody;
use crate::health::{ProbeError, ProbeFn};

type Mock = mock::Mock<Request<MeshBody>, Response<String>>;
type Handle = mock::Handle<Request<MeshBody>, Response<String>>;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

#[derive(Clone, Copy, PartialEq)]
enum Answer {
    Pass,
    Fail,
    Hang,
}

/// Per endpoint: what its probe answers and how often it was probed.
#[derive(Default, Clone)]
struct Fake {
    answers: Arc<Mutex<HashMap<SocketAddr, Answer>>>,
    calls: Arc<Mutex<HashMap<SocketAddr, Arc<AtomicU32>>>>,
}

impl Fake {
    fn set(&self, port: u16, a: Answer) {
        self.answers.lock().insert(addr(port), a);
    }

    fn calls(&self, port: u16) -> u32 {
        self.calls
            .lock()
            .get(&addr(port))
            .map_or(0, |c| c.load(Ordering::SeqCst))
    }

    fn probe(&self) -> ProbeFn {
        let fake = self.clone();
        Arc::new(move |a, _config| {
            fake.calls
                .lock()
                .entry(a)
                .or_default()
                .fetch_add(1, Ordering::SeqCst);
            let answer = fake.answers.lock().get(&a).copied().unwrap_or(Answer::Pass);
            Box::pin(async move {
                match answer {
                    Answer::Pass => Ok(()),
                    Answer::Fail => Err(ProbeError::Status(http::StatusCode::SERVICE_UNAVAILABLE)),
                    Answer::Hang => {
                        sleep(Duration::from_secs(3600)).await;
                        Ok(())
                    }
                }
            })
        })
    }
}

fn config() -> ServiceConfig {
    ServiceConfig {
        health_check: Some(HealthCheckConfig {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(100),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            ..HealthCheckConfig::default()
        }),
        ..ServiceConfig::default()
    }
}

fn setup(fake: &Fake, ports: &[u16]) -> (Balance<Mock>, Handle, EndpointPool) {
    let pool = EndpointPool::builder("news", &config())
        .health_probe(fake.probe())
        .build()
        .unwrap();
    pool.apply(Update::Reset(
        ports.iter().map(|p| Endpoint::new(addr(*p))).collect(),
    ));
    let (mock, handle) = mock::pair();
    (Balance::new(mock, pool.clone()), handle, pool)
}

/// Sends `n` requests, answering each; the ports that served them.
async fn served(svc: &mut Balance<Mock>, handle: &mut Handle, n: usize) -> Vec<u16> {
    let mut ports = Vec::new();
    for _ in 0..n {
        let req = Request::builder()
            .uri("http://news/")
            .body(MeshBody::empty())
            .unwrap();
        let fut = svc.ready().await.unwrap().call(req);
        let (got, send) = handle.next_request().await.unwrap();
        ports.push(got.uri().port_u16().unwrap());
        send.send_response(Response::new(String::new()));
        fut.await.unwrap();
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Lets the probes that are due run (the clock is paused).
async fn at(start: tokio::time::Instant, millis: u64) {
    tokio::time::sleep_until(start + Duration::from_millis(millis)).await;
}

#[tokio::test(start_paused = true)]
async fn unhealthy_after_n_failures_and_back_after_m_successes() {
    let fake = Fake::default();
    let start = tokio::time::Instant::now();
    let (mut svc, mut handle, pool) = setup(&fake, &[1, 2]);
    at(start, 10).await;
    assert_eq!(fake.calls(1), 1, "probed at once");
    assert!(pool.unhealthy().is_empty());
    assert_eq!(served(&mut svc, &mut handle, 20).await, vec![1, 2]);

    fake.set(2, Answer::Fail);
    // Probe k runs within [k s, k x 1.1 s] (interval plus up to 10% jitter).
    at(start, 2250).await;
    assert_eq!(fake.calls(2), 3);
    assert!(pool.unhealthy().is_empty(), "2 failures < threshold 3");
    at(start, 3350).await;
    assert_eq!(fake.calls(2), 4);
    assert_eq!(pool.unhealthy(), vec![addr(2)], "3 failures");
    assert_eq!(served(&mut svc, &mut handle, 20).await, vec![1]);

    fake.set(2, Answer::Pass);
    at(start, 4500).await;
    assert_eq!(fake.calls(2), 5);
    assert_eq!(pool.unhealthy(), vec![addr(2)], "1 success < threshold 2");
    at(start, 5600).await;
    assert_eq!(fake.calls(2), 6);
    assert!(pool.unhealthy().is_empty(), "2 successes");
    assert_eq!(served(&mut svc, &mut handle, 20).await, vec![1, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_probe_timeout_is_a_failure() {
    let fake = Fake::default();
    let start = tokio::time::Instant::now();
    let (_svc, _handle, pool) = setup(&fake, &[1, 2]);
    at(start, 10).await;
    fake.set(2, Answer::Hang);
    // Probe k (k >= 2) ends within [(k-1) x 1.1 s, (k-1) x 1.2 s]: the interval,
    // up to 10% jitter and the 100 ms timeout per cycle; the third timeout
    // (probe 4) is in by 3.6 s.
    at(start, 3700).await;
    assert_eq!(pool.unhealthy(), vec![addr(2)]);
}

#[tokio::test(start_paused = true)]
async fn a_new_endpoint_takes_traffic_only_after_its_first_success() {
    let fake = Fake::default();
    let start = tokio::time::Instant::now();
    let (mut svc, mut handle, pool) = setup(&fake, &[1, 2]);
    at(start, 10).await;
    fake.set(3, Answer::Fail);
    pool.apply(Update::Add(vec![Endpoint::new(addr(3))]));
    assert_eq!(pool.unhealthy(), vec![addr(3)], "unchecked");
    at(start, 2000).await;
    assert!(fake.calls(3) >= 2);
    assert_eq!(served(&mut svc, &mut handle, 30).await, vec![1, 2]);
    fake.set(3, Answer::Pass);
    at(start, 3300).await;
    assert!(
        pool.unhealthy().is_empty(),
        "one success is enough at first"
    );
    assert_eq!(served(&mut svc, &mut handle, 30).await, vec![1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn all_unhealthy_falls_back_to_every_endpoint() {
    let fake = Fake::default();
    fake.set(1, Answer::Fail);
    fake.set(2, Answer::Fail);
    let start = tokio::time::Instant::now();
    let (mut svc, mut handle, pool) = setup(&fake, &[1, 2]);
    at(start, 5000).await;
    assert_eq!(pool.unhealthy(), vec![addr(1), addr(2)]);
    assert_eq!(served(&mut svc, &mut handle, 30).await, vec![1, 2]);
}

#[tokio::test(start_paused = true)]
async fn tasks_end_with_their_endpoint_and_with_the_pool() {
    let fake = Fake::default();
    let start = tokio::time::Instant::now();
    let (svc, handle, pool) = setup(&fake, &[1, 2]);
    at(start, 10).await;
    pool.apply(Update::Remove(vec![addr(2)]));
    at(start, 5000).await;
    assert_eq!(fake.calls(2), 1, "no probe after removal");
    assert!(fake.calls(1) >= 5);
    drop((svc, handle, pool));
    let before = fake.calls(1);
    at(start, 10_000).await;
    assert_eq!(fake.calls(1), before, "no probe after the pool is gone");
}

#[tokio::test(start_paused = true)]
async fn removing_the_block_makes_every_endpoint_eligible() {
    let fake = Fake::default();
    fake.set(2, Answer::Fail);
    let start = tokio::time::Instant::now();
    let (mut svc, mut handle, pool) = setup(&fake, &[1, 2]);
    at(start, 10).await;
    assert_eq!(pool.unhealthy(), vec![addr(2)]);
    pool.set_config(&ServiceConfig::default());
    assert!(pool.unhealthy().is_empty());
    assert_eq!(served(&mut svc, &mut handle, 30).await, vec![1, 2]);
    let calls = fake.calls(2);
    at(start, 5000).await;
    assert_eq!(fake.calls(2), calls, "checking stopped");
    // And back on: endpoint 2 is probed again and excluded.
    pool.set_config(&config());
    at(start, 5010).await;
    assert_eq!(pool.unhealthy(), vec![addr(2)]);
    assert_eq!(served(&mut svc, &mut handle, 30).await, vec![1]);
}
