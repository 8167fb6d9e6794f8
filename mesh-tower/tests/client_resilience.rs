//! The assembled stack's layers working together against real upstreams:
//! retries to another endpoint and outlier ejection hide a failing
//! endpoint; a hung endpoint costs one per-try timeout and gets ejected;
//! the golden-signal instruments see it all.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod client_common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use client_common::{get, load, upstream, upstream_fn};
use mesh_core::config::{Format, parse_str};
use mesh_tower::Mesh;
use mesh_tower::ext::Attempts;
use mesh_tower::metrics::Metrics;
use mesh_tower::metrics::prometheus::pipeline;
use opentelemetry::metrics::MeterProvider;
use tower::ServiceExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_ejection_hide_a_failing_endpoint() {
    let good1 = upstream("good1").await;
    let good2 = upstream("good2").await;
    let bad = upstream_fn("bad", |_| (503, Duration::ZERO)).await;
    let config = parse_str(
        &format!(
            "services:
  news:
    load_balancer: round_robin
    retry:
      attempts: 3
      on: [5xx]
      backoff: {{ base: 1ms, max: 5ms }}
    outlier_detection:
      consecutive_failures: 3
      interval: 1s
      base_ejection: 60s
      max_ejected_percent: 50
    endpoints: [ {{ address: {} }}, {{ address: {} }}, {{ address: {} }} ]
",
            good1.addr, good2.addr, bad.addr
        ),
        Format::Yaml,
        "test.yaml",
    )
    .unwrap();
    let (provider, exposition) = pipeline(None).unwrap();
    let mesh = Mesh::builder()
        .config(config)
        .metrics(Metrics::new(&provider.meter("mesh-tower")))
        .build()
        .unwrap();
    let client = mesh.client("news");
    let (counts, errors) = load(&client, 1000, 4, Duration::from_secs(60), |_| {
        get("http://news/")
    })
    .await;
    assert!(
        errors.is_empty(),
        "{} failed: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert_eq!(counts.values().sum::<u64>(), 1000);
    assert!(
        !counts.contains_key(&bad.addr),
        "a 503 is never the final answer"
    );
    // Ejected after its third consecutive failure (a few more may have been
    // picked concurrently).
    let bad_hits = bad.hits.load(Ordering::Relaxed);
    assert!((3..=8).contains(&bad_hits), "bad endpoint hits: {bad_hits}");

    let text = exposition.render().unwrap();
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l.contains("news"))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .to_string()
    };
    assert!(
        line("mesh_client_retries_total").ends_with(&format!(" {bad_hits}")),
        "{text}"
    );
    assert!(
        line("mesh_outlier_ejections_total").ends_with(" 1"),
        "{text}"
    );
    assert!(
        text.contains("http_client_request_duration_seconds_count"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_endpoint_costs_one_per_try_timeout_and_is_ejected() {
    let good = upstream("good").await;
    let hung = upstream_fn("hung", |_| (200, Duration::from_secs(30))).await;
    let config = parse_str(
        &format!(
            "services:
  news:
    load_balancer: round_robin
    timeout: 5s
    retry:
      attempts: 2
      per_try_timeout: 100ms
      on: [reset, 5xx]
      backoff: {{ base: 1ms, max: 2ms }}
    outlier_detection:
      consecutive_failures: 2
      interval: 1s
      base_ejection: 60s
      max_ejected_percent: 50
    endpoints: [ {{ address: {} }}, {{ address: {} }} ]
",
            good.addr, hung.addr
        ),
        Format::Yaml,
        "test.yaml",
    )
    .unwrap();
    let mesh = Mesh::builder().config(config).build().unwrap();
    let client = mesh.client("news");
    for i in 0..20 {
        let start = tokio::time::Instant::now();
        let response = client.clone().oneshot(get("http://news/")).await.unwrap();
        assert!(response.status().is_success());
        let attempts = response.extensions().get::<Attempts>().unwrap().0;
        // One hung attempt at most: well under the 5s call timeout.
        assert!(attempts <= 2, "request {i}: {attempts} attempts");
        assert!(start.elapsed() < Duration::from_secs(5), "request {i}");
    }
    // The per-try timeouts counted as the endpoint's failures: ejected
    // after two.
    assert_eq!(hung.hits.load(Ordering::Relaxed), 2);
    assert_eq!(good.hits.load(Ordering::Relaxed), 20);
}
