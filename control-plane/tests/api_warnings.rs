//! Config that xDS clients cannot take as written is served translated (never
//! as a resource they would NACK), and the API says so: in the answer to the
//! PUT, in `GET /api/v1/snapshot`, and on `meshctl apply`'s stderr.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod serve_harness;

use http::Method;
use serve_harness::{Cp, stderr};

const CONFIG: &str = "services:\n  news:\n    load_balancer: peak_ewma\n    endpoints: [{ address: 127.0.0.1:8081 }]\n";

#[test]
fn translated_config_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Cp::start(dir.path(), &[]);
    let (status, resp) = cp.http(
        Method::PUT,
        "/api/v1/config",
        Some(("application/yaml", CONFIG)),
        None,
    );
    assert!(status.is_success(), "{resp}");
    let warnings = resp["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("services.news.load_balancer")),
        "{resp}"
    );
    let snap = cp.get("/api/v1/snapshot");
    assert_eq!(snap["warnings"], resp["warnings"], "{snap}");

    let file = dir.path().join("plain.yaml");
    std::fs::write(&file, "services:\n  news: { load_balancer: round_robin }\n").unwrap();
    let out = cp.run(&["apply", "-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("warning"),
        "nothing to warn: {}",
        stderr(&out)
    );
    assert_eq!(
        cp.get("/api/v1/snapshot")["warnings"],
        serde_json::json!([])
    );

    let file = dir.path().join("ewma.yaml");
    std::fs::write(&file, CONFIG).unwrap();
    let out = cp.run(&["apply", "-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning: services.news.load_balancer: peak_ewma"),
        "{}",
        stderr(&out)
    );
}
