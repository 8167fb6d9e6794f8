//! A control plane with a token: writes need `Authorization: Bearer`, reads
//! do not; the CLI sends `--token` / `MESH_CP_TOKEN`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod serve_harness;

use http::{Method, StatusCode};
use serve_harness::{Cp, stderr};

const CONFIG: &str = "services:\n  news: {}\n";

#[test]
fn writes_need_the_token() {
    let dir = tempfile::tempdir().unwrap();
    // The token from the environment, as MESH_CP_TOKEN.
    let cp = Cp::try_start(dir.path(), &[], &[("MESH_CP_TOKEN", "s3cret")]).unwrap();
    let body = Some(("application/yaml", CONFIG));
    for token in [None, Some("wrong"), Some("s3cre"), Some("s3cret2")] {
        let (status, resp) = cp.http(Method::PUT, "/api/v1/config", body, token);
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}: {resp}");
        assert!(resp["error"].is_string());
    }
    for (method, path) in [
        (Method::PUT, "/api/v1/services/news/endpoints/a"),
        (Method::DELETE, "/api/v1/services/news/endpoints/a"),
        (Method::PUT, "/api/v1/services/news/endpoints/a/heartbeat"),
        (Method::POST, "/api/v1/intentions"),
        (Method::PUT, "/api/v1/intentions/a/b"),
        (Method::DELETE, "/api/v1/intentions/a/b"),
        (Method::POST, "/api/v1/config/rollback"),
    ] {
        let (status, _) = cp.http(method.clone(), path, Some(("application/json", "{}")), None);
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    assert_eq!(cp.get("/api/v1/config")["version"], 0, "nothing written");
    let (status, _) = cp.http(Method::PUT, "/api/v1/config", body, Some("s3cret"));
    assert_eq!(status, StatusCode::OK);
    // Reads stay open.
    assert_eq!(cp.get("/api/v1/config")["version"], 1);
    assert_eq!(cp.get_text("/healthz"), "ok\n");

    std::fs::write(dir.path().join("mesh.yaml"), "services:\n  web: {}\n").unwrap();
    let out = cp.run(&["apply", "-f", "mesh.yaml"]);
    assert_eq!(out.status.code(), Some(1), "no token");
    assert!(stderr(&out).contains("Bearer"), "{}", stderr(&out));
    let out = cp.run(&["apply", "-f", "mesh.yaml", "--token", "s3cret"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cp
        .cli()
        .env("MESH_CP_TOKEN", "s3cret")
        .args(["register", "web", "127.0.0.1:9000"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cp.run(&["get", "services", "--server", "http://127.0.0.1:1"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--server overrides MESH_CP_URL; unreachable is 2"
    );
    assert!(stderr(&out).contains("cannot reach"), "{}", stderr(&out));
}
