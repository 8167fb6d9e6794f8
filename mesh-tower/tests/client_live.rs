//! Endpoints changed live through a watched config file, under load: no
//! request fails, the removed endpoint drains, the new one takes traffic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod client_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use client_common::{Upstream, get, upstream, upstream_with_delay};
use http_body_util::BodyExt;
use mesh_tower::Mesh;
use mesh_tower::ext::ServedBy;
use tower::ServiceExt;

fn write_config(path: &std::path::Path, eps: &[&Upstream], extra: &str) {
    let list: Vec<String> = eps
        .iter()
        .map(|u| format!("{{ address: {} }}", u.addr))
        .collect();
    std::fs::write(
        path,
        format!(
            "services:\n  news:\n    load_balancer: round_robin\n{extra}    endpoints: [ {} ]\n",
            list.join(", ")
        ),
    )
    .unwrap();
}

/// Waits (bounded) until `cond` holds.
async fn eventually(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let start = tokio::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_change_live_through_the_config_file_under_load() {
    // `a` answers slowly, so requests are in flight to it when it is removed.
    let a = upstream_with_delay("a", Duration::from_millis(150)).await;
    let b = upstream("b").await;
    let c = upstream("c").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mesh.yaml");
    write_config(&path, &[&a, &b], "");
    let mesh = Mesh::builder().config_file(&path).build().unwrap();
    let client = mesh.client("news");

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        let (stop, ok) = (stop.clone(), ok.clone());
        tasks.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            let mut sent = 0u32;
            while !stop.load(Ordering::Relaxed) && sent < 20_000 {
                sent += 1;
                match client.clone().oneshot(get("http://news/")).await {
                    Ok(r) if r.status().is_success() => {
                        assert!(r.extensions().get::<ServedBy>().is_some());
                        r.into_body().collect().await.unwrap();
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => errors.push(format!("status {}", r.status())),
                    Err(e) => errors.push(e.to_string()),
                }
            }
            errors
        }));
    }

    let limit = Duration::from_secs(20);
    eventually("traffic on a and b", limit, || {
        a.hits.load(Ordering::Relaxed) > 20 && b.hits.load(Ordering::Relaxed) > 50
    })
    .await;
    // Swap a for c while a has requests in flight.
    write_config(&path, &[&b, &c], "");
    eventually("traffic on c", limit, || {
        c.hits.load(Ordering::Relaxed) > 50
    })
    .await;
    // a's in-flight requests have completed by now (150ms); it gets no more.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a_after = a.hits.load(Ordering::Relaxed);
    let c_now = c.hits.load(Ordering::Relaxed);
    eventually("more traffic on c", limit, || {
        c.hits.load(Ordering::Relaxed) > c_now + 300
    })
    .await;
    assert_eq!(
        a.hits.load(Ordering::Relaxed),
        a_after,
        "removed endpoint got new requests"
    );

    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    for t in tasks {
        errors.extend(t.await.unwrap());
    }
    assert!(
        errors.is_empty(),
        "{} failed: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    let total = a.hits.load(Ordering::Relaxed)
        + b.hits.load(Ordering::Relaxed)
        + c.hits.load(Ordering::Relaxed);
    assert_eq!(ok.load(Ordering::Relaxed), total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_changes_apply_live_and_a_bad_edit_keeps_the_last_good_config() {
    let a = upstream("a").await;
    let b = upstream("b").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mesh.yaml");
    write_config(&path, &[&a, &b], "");
    let mesh = Mesh::builder().config_file(&path).build().unwrap();
    let client = mesh.client("news");
    assert!(client.clone().oneshot(get("http://news/x")).await.is_ok());

    // A route that only takes /api: other paths now fail with NoRoute.
    write_config(
        &path,
        &[&a, &b],
        "    routes:\n      - match: { path_prefix: /api }\n",
    );
    let limit = Duration::from_secs(20);
    let start = tokio::time::Instant::now();
    loop {
        let r = client.clone().oneshot(get("http://news/x")).await;
        if let Err(e) = &r {
            assert_eq!(
                mesh_tower::error::kind(&**e),
                mesh_tower::error::ErrorKind::NoRoute
            );
            break;
        }
        assert!(start.elapsed() < limit, "routes never applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        client
            .clone()
            .oneshot(get("http://news/api/1"))
            .await
            .is_ok()
    );

    // A broken file is rejected; the routes stay.
    std::fs::write(&path, "services: [ not a map").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        client
            .clone()
            .oneshot(get("http://news/api/1"))
            .await
            .is_ok()
    );
    assert!(client.clone().oneshot(get("http://news/x")).await.is_err());
}
