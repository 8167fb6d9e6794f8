//! Registration through the REST API of a real `meshctl serve`: TTLs expire
//! and change the served snapshot, heartbeats renew, bad input is a 400 that
//! names the field.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod serve_harness;

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::Value;
use serve_harness::{Cp, eventually, stderr, stdout};

const EP: &str = "/api/v1/services/news/endpoints";

fn discovered(cp: &Cp) -> (u64, Vec<String>) {
    let snap = cp.get("/api/v1/snapshot");
    let addrs = snap["discovered"]["news"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["address"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    (snap["version"].as_u64().unwrap(), addrs)
}

#[test]
fn registration_with_ttl_expires_and_the_snapshot_changes() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Cp::start(dir.path(), &[]);
    let (v0, none) = discovered(&cp);
    assert!(none.is_empty());

    let (status, body) = cp.json(
        Method::PUT,
        &format!("{EP}/a"),
        r#"{"address":"127.0.0.1:9001","weight":2,"zone":"z1","labels":{"version":"v1"},"ttl":"1s"}"#,
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["outcome"], "created");
    let (v1, addrs) = discovered(&cp);
    assert_eq!(addrs, ["127.0.0.1:9001"]);
    assert!(v1 > v0, "a new snapshot was published");

    let service = cp.get("/api/v1/services/news");
    assert_eq!(service["in_config"], false, "registered without config");
    assert_eq!(service["endpoints"][0]["state"], "registered");
    assert_eq!(service["endpoints"][0]["zone"], "z1");
    assert!(service["endpoints"][0]["expires_in_ms"].as_u64().unwrap() <= 1000);

    // Expiry: bounded wait well beyond the TTL.
    let after = eventually(Duration::from_secs(10), || {
        let (v, addrs) = discovered(&cp);
        addrs.is_empty().then_some(v)
    })
    .expect("the endpoint expired");
    assert!(after > v1, "expiry published a new snapshot");
    let (status, _) = cp.http(Method::GET, "/api/v1/services/news", None, None);
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing left of the service");
    let metrics = cp.get_text("/metrics");
    assert!(
        metrics.contains("mesh_cp_registered_endpoints 0"),
        "{metrics}"
    );
}

#[test]
fn heartbeats_and_re_registration_renew() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Cp::start(dir.path(), &[]);
    let body = r#"{"address":"127.0.0.1:9001","ttl":"2s"}"#;
    assert_eq!(
        cp.json(Method::PUT, &format!("{EP}/a"), body).0,
        StatusCode::CREATED
    );
    let (v1, _) = discovered(&cp);
    // 4 s of life on a 2 s TTL, renewed every 500 ms by heartbeat or re-PUT.
    for i in 0..8 {
        std::thread::sleep(Duration::from_millis(500));
        let (status, resp) = if i % 2 == 0 {
            cp.json(Method::PUT, &format!("{EP}/a/heartbeat"), "")
        } else {
            cp.json(Method::PUT, &format!("{EP}/a"), body)
        };
        assert_eq!(status, StatusCode::OK, "{resp}");
        if i % 2 == 1 {
            assert_eq!(resp["outcome"], "renewed");
        }
        assert!(resp["expires_in_ms"].as_u64().unwrap() > 1500, "{resp}");
    }
    let (v2, addrs) = discovered(&cp);
    assert_eq!(addrs, ["127.0.0.1:9001"], "still alive after twice its TTL");
    assert_eq!(v1, v2, "renewals that change nothing publish nothing");

    // A re-registration that changes the endpoint publishes.
    let (status, resp) = cp.json(
        Method::PUT,
        &format!("{EP}/a"),
        r#"{"address":"127.0.0.1:9001","weight":7,"ttl":"2s"}"#,
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resp["outcome"], "changed");
    assert!(discovered(&cp).0 > v2);

    let (status, _) = cp.json(Method::PUT, &format!("{EP}/zz/heartbeat"), "");
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = cp.http(Method::DELETE, &format!("{EP}/a"), None, None);
    assert_eq!(status, StatusCode::OK);
    assert!(discovered(&cp).1.is_empty(), "deregistered at once");
    let (status, _) = cp.http(Method::DELETE, &format!("{EP}/a"), None, None);
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn bad_registrations_are_400_with_field_names() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Cp::start(dir.path(), &[]);
    let fields = |body: &Value| -> Vec<String> {
        body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, body) = cp.json(
        Method::PUT,
        &format!("{EP}/a"),
        r#"{"address":"localhost","weight":0,"ttl":"soon","colour":"red"}"#,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut got = fields(&body);
    got.sort();
    assert_eq!(got, ["address", "colour", "ttl", "weight"], "{body}");

    for (payload, field) in [
        (r#"{"address":"127.0.0.1:1","weight":1000001}"#, "weight"),
        (r#"{"address":"127.0.0.1:1","weight":"3"}"#, "weight"),
        (r#"{"address":"127.0.0.1:1","ttl":"100ms"}"#, "ttl"),
        (r#"{"address":"127.0.0.1:1","ttl":"48h"}"#, "ttl"),
        (r#"{"address":"127.0.0.1:0"}"#, "address"),
        (r#"{"weight":2}"#, "address"),
        (r#"{"address":"127.0.0.1:1","labels":{"v":1}}"#, "labels.v"),
    ] {
        let (status, body) = cp.json(Method::PUT, &format!("{EP}/a"), payload);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{payload}");
        assert_eq!(fields(&body), [field], "{payload}: {body}");
    }
    let (status, body) = cp.json(
        Method::PUT,
        "/api/v1/services/Bad_Name/endpoints/a",
        r#"{"address":"127.0.0.1:1"}"#,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(fields(&body), ["service"]);
    let (status, _) = cp.json(Method::PUT, &format!("{EP}/a"), "not json");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(discovered(&cp).1.is_empty(), "nothing registered");

    // One address, one id.
    assert_eq!(
        cp.json(
            Method::PUT,
            &format!("{EP}/a"),
            r#"{"address":"127.0.0.1:1"}"#
        )
        .0,
        StatusCode::CREATED
    );
    let (status, body) = cp.json(
        Method::PUT,
        &format!("{EP}/b"),
        r#"{"address":"127.0.0.1:1"}"#,
    );
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // The CLI says the same, exit 1.
    let out = cp.run(&["register", "news", "nowhere:80", "--weight", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("address:"), "{}", stderr(&out));
    assert!(stderr(&out).contains("weight:"), "{}", stderr(&out));
    let out = cp.run(&[
        "register",
        "news",
        "127.0.0.1:2",
        "--ttl",
        "30s",
        "--zone",
        "z",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cp.run(&["get", "endpoints", "news"]);
    let line = stdout(&out)
        .lines()
        .find(|l| l.starts_with("127.0.0.1:2 "))
        .map(str::to_string)
        .unwrap();
    assert!(
        line.contains("registered") && line.contains("30s"),
        "{line}"
    );
}

#[test]
fn unknown_routes_and_services_are_404() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Cp::start(dir.path(), &[]);
    for path in [
        "/api/v1/services/ghost",
        "/api/v1/nothing",
        "/api/v1/config/versions/4",
        "/api/v1/intentions/a/b",
    ] {
        let (status, body) = cp.http(Method::GET, path, None, None);
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
}
