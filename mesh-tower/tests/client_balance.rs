//! The assembled `MeshClient` against real axum upstreams: weighted
//! balancing, a 90/10 subset split, hash stickiness, response extensions,
//! typed errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod client_common;

use std::collections::HashMap;
use std::time::Duration;

use client_common::{Upstream, body_string, get, load, share, upstream};
use mesh_core::MeshConfig;
use mesh_core::config::{Format, parse_str};
use mesh_discovery::StaticSource;
use mesh_tower::Mesh;
use mesh_tower::error::{ErrorKind, kind};
use mesh_tower::ext::{Attempts, ServedBy};
use tower::ServiceExt;

fn config(yaml: &str) -> MeshConfig {
    parse_str(yaml, Format::Yaml, "test.yaml").unwrap()
}

async fn three() -> [Upstream; 3] {
    [
        upstream("a").await,
        upstream("b").await,
        upstream("c").await,
    ]
}

async fn weighted(algorithm: &str) {
    let [a, b, c] = three().await;
    let mesh = Mesh::builder()
        .config(config(&format!(
            "services:
  news:
    load_balancer: {algorithm}
    endpoints:
      - {{ address: {}, weight: 1 }}
      - {{ address: {}, weight: 3 }}
      - {{ address: {}, weight: 6 }}
",
            a.addr, b.addr, c.addr
        )))
        .build()
        .unwrap();
    let client = mesh.client("news");
    let (counts, errors) = load(&client, 10_000, 16, Duration::from_secs(120), |_| {
        get("http://news/")
    })
    .await;
    assert!(errors.is_empty(), "{errors:?}");
    let total: u64 = counts.values().sum();
    assert_eq!(total, 10_000);
    for (up, weight) in [(&a, 0.1), (&b, 0.3), (&c, 0.6)] {
        let got = share(counts[&up.addr], total);
        // +-3% of the weight; for a random draw, at least 4 standard
        // deviations of the sampled share (weight 0.1 over 10k: 0.003).
        let sigma = (weight * (1.0 - weight) / total as f64).sqrt();
        let tolerance = if algorithm == "random" {
            (weight * 0.03).max(4.0 * sigma)
        } else {
            weight * 0.03
        };
        assert!(
            (got - weight).abs() <= tolerance,
            "{algorithm}: {} got {got}, weight share {weight}",
            up.name
        );
        assert_eq!(
            counts[&up.addr],
            up.hits.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_round_robin_follows_the_weights() {
    weighted("weighted_round_robin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_follows_the_weights() {
    weighted("random").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_split_90_10_across_label_subsets() {
    let [v1a, v1b, v2] = three().await;
    let mesh = Mesh::builder()
        .config(config(&format!(
            "services:
  news:
    endpoints:
      - {{ address: {}, labels: {{ version: v1 }} }}
      - {{ address: {}, labels: {{ version: v1 }} }}
      - {{ address: {}, labels: {{ version: v2 }} }}
    subsets: {{ v1: {{ version: v1 }}, v2: {{ version: v2 }} }}
    routes:
      - match: {{ headers: {{ x-canary: \"true\" }} }}
        split: {{ v2: 100 }}
      - match: {{ path_prefix: / }}
        split: {{ v1: 90, v2: 10 }}
",
            v1a.addr, v1b.addr, v2.addr
        )))
        .build()
        .unwrap();
    let client = mesh.client("news");
    let (counts, errors) = load(&client, 10_000, 16, Duration::from_secs(120), |_| {
        get("http://news/articles")
    })
    .await;
    assert!(errors.is_empty(), "{errors:?}");
    let v2_share = share(counts[&v2.addr], 10_000);
    // 4 standard deviations of a 10% draw over 10k requests (0.003 each).
    assert!((v2_share - 0.1).abs() <= 0.012, "v2 share {v2_share}");
    let v1_share = share(counts[&v1a.addr] + counts[&v1b.addr], 10_000);
    assert!((v1_share - 0.9).abs() <= 0.9 * 0.03, "v1 share {v1_share}");
    // Both v1 endpoints take a share (least request over the subset).
    assert!(
        counts[&v1a.addr] > 3000 && counts[&v1b.addr] > 3000,
        "{counts:?}"
    );

    // The header route sends everything to v2.
    let (counts, errors) = load(&client, 200, 4, Duration::from_secs(60), |_| {
        let mut r = get("http://news/articles");
        r.headers_mut().insert("x-canary", "true".parse().unwrap());
        r
    })
    .await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(counts.get(&v2.addr), Some(&200), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_on_header_keeps_a_user_on_one_endpoint() {
    let [a, b, c] = three().await;
    for algorithm in ["ring_hash", "maglev"] {
        let mesh = Mesh::builder()
            .config(config(&format!(
                "services:
  news:
    load_balancer: {algorithm}
    hash_on: {{ header: x-user-id }}
    endpoints: [ {{ address: {} }}, {{ address: {} }}, {{ address: {} }} ]
",
                a.addr, b.addr, c.addr
            )))
            .build()
            .unwrap();
        let client = mesh.client("news");
        let (counts, errors) = load(&client, 1000, 8, Duration::from_secs(60), |i| {
            let mut r = get("http://news/");
            r.headers_mut()
                .insert("x-user-id", format!("user-{}", i % 50).parse().unwrap());
            r
        })
        .await;
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(counts.len(), 3, "50 users spread over all: {counts:?}");
        // Each user always lands on the same endpoint.
        let mut home = HashMap::new();
        for user in 0..50 {
            for _ in 0..4 {
                let mut r = get("http://news/");
                r.headers_mut()
                    .insert("x-user-id", format!("user-{user}").parse().unwrap());
                let response = client.clone().oneshot(r).await.unwrap();
                let served = response.extensions().get::<ServedBy>().unwrap().0;
                assert_eq!(
                    *home.entry(user).or_insert(served),
                    served,
                    "{algorithm} user {user}"
                );
            }
        }
    }
}

#[tokio::test]
async fn responses_carry_the_endpoint_and_attempts_and_keep_the_host() {
    let a = upstream("a").await;
    let mesh = Mesh::builder()
        .config(config(&format!(
            "services:\n  news-service:\n    endpoints: [ {{ address: {} }} ]\n",
            a.addr
        )))
        .build()
        .unwrap();
    let response = mesh
        .client("news-service")
        .oneshot(get("http://news-service/x?y=1"))
        .await
        .unwrap();
    assert_eq!(
        response.extensions().get::<ServedBy>(),
        Some(&ServedBy(a.addr))
    );
    assert_eq!(response.extensions().get::<Attempts>(), Some(&Attempts(1)));
    assert_eq!(body_string(response).await, "a news-service");
}

#[tokio::test(start_paused = true)]
async fn an_unknown_service_fails_with_no_endpoints() {
    let mesh = Mesh::builder()
        .discover(StaticSource::new())
        .wait_for_endpoints(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = mesh
        .client("nowhere")
        .oneshot(get("http://nowhere/"))
        .await
        .unwrap_err();
    assert_eq!(kind(&*err), ErrorKind::NoEndpoints, "{err}");
    // The source's reason is kept.
    assert!(err.to_string().contains("discovery failed"), "{err}");
    assert!(err.to_string().contains("nowhere"), "{err}");
}

#[tokio::test]
async fn the_concurrency_limit_fails_fast_with_circuit_open() {
    let a = upstream("a").await;
    let mesh = Mesh::builder()
        .config(config(&format!(
            "services:
  news:
    circuit_breaker: {{ max_requests: 1, max_pending: 1 }}
    endpoints: [ {{ address: {} }} ]
",
            a.addr
        )))
        .build()
        .unwrap();
    let client = mesh.client("news");
    // The first response is held (its body unread) but its future is
    // done: the permit is back. Two concurrent calls: one may be refused.
    let first = client.clone().oneshot(get("http://news/"));
    let second = client.clone().oneshot(get("http://news/"));
    let (r1, r2) = tokio::join!(first, second);
    let refused = [&r1, &r2]
        .iter()
        .filter(|r| {
            r.as_ref()
                .is_err_and(|e| kind(&**e) == ErrorKind::CircuitOpen)
        })
        .count();
    let ok = [&r1, &r2].iter().filter(|r| r.is_ok()).count();
    assert_eq!((ok, refused), (1, 1), "{r1:?} {r2:?}");
}
