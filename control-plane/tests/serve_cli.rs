//! `meshctl serve` and the API commands as a user runs them: the real
//! binary, real sockets, a real SQLite file in a temporary working directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod serve_harness;

use std::net::TcpStream;

use http::{Method, StatusCode};
use serde_json::Value;
use serve_harness::{Cp, stderr, stdout};

const V1: &str = "services:\n  news:\n    endpoints: [{ address: 127.0.0.1:8081, weight: 3 }]\n";
const V2: &str = "services:\n  news:\n    endpoints: [{ address: 127.0.0.1:8082 }]\n  web: {}\n";

#[test]
fn starts_with_no_flags_in_a_fresh_directory() {
    let dir = tempfile::tempdir().unwrap();
    // No flags at all: addresses from MESH_CP_*_ADDR (port 0), data in ./mesh-data.
    let cp = Cp::start(dir.path(), &[]);
    assert!(dir.path().join("mesh-data/mesh.db").is_file());
    assert_eq!(cp.get_text("/healthz"), "ok\n");
    TcpStream::connect(&cp.grpc).expect("the gRPC port is bound");
    let config = cp.get("/api/v1/config");
    assert_eq!(config["version"], 0, "nothing applied yet: {config}");
    let status = cp.stop();
    assert!(status.success(), "clean stop on SIGTERM: {status:?}");
}

#[test]
fn apply_get_rollback_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Cp::start(dir.path(), &[]);
    std::fs::write(dir.path().join("v1.yaml"), V1).unwrap();
    std::fs::write(dir.path().join("v2.yaml"), V2).unwrap();

    let out = cp.run(&["apply", "-f", "v1.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("config version 1"),
        "{}",
        stdout(&out)
    );
    let out = cp.run(&["apply", "-f", "v1.yaml"]);
    assert!(stdout(&out).contains("unchanged"), "{}", stdout(&out));

    let out = cp.run(&["get", "config"]);
    assert_eq!(stdout(&out), V1, "the text as applied");

    let out = cp.run(&["apply", "-f", "v2.yaml"]);
    assert!(
        stdout(&out).contains("config version 2"),
        "{}",
        stdout(&out)
    );
    let out = cp.run(&["get", "services"]);
    let table = stdout(&out);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("web ")), "{table}");

    let out = cp.run(&["rollback", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("now config version 3"),
        "{}",
        stdout(&out)
    );
    assert_eq!(stdout(&cp.run(&["get", "config"])), V1);

    let out = cp.run(&["get", "versions", "-o", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["current"], 3);
    let versions = v["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 3);
    assert_eq!(versions[2]["rollback_of"], 1);
    let out = cp.run(&["get", "versions"]);
    assert!(
        stdout(&out).lines().any(|l| l.starts_with("3* ")),
        "{}",
        stdout(&out)
    );

    let out = cp.run(&["get", "endpoints", "news", "-o", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["endpoints"][0]["address"], "127.0.0.1:8081");
    assert_eq!(v["endpoints"][0]["weight"], 3);
    assert_eq!(v["endpoints"][0]["state"], "static");

    let out = cp.run(&["rollback", "9"]);
    assert_eq!(out.status.code(), Some(1), "unknown version");
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
    let out = cp.run(&["get", "endpoints", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
}

#[test]
fn invalid_config_is_refused_with_paths_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Cp::start(dir.path(), &[]);
    let (status, _) = cp.http(
        Method::PUT,
        "/api/v1/config",
        Some(("application/yaml", V1)),
        None,
    );
    assert_eq!(status, StatusCode::OK);
    let snapshot_before = cp.get("/api/v1/snapshot")["version"].clone();

    let bad = "services:\n  news:\n    retry:\n      attempts: 0\n    load_balancer: fastest\n    timeuot: 2s\n";
    let (status, body) = cp.http(
        Method::PUT,
        "/api/v1/config",
        Some(("application/yaml", bad)),
        None,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 3, "every error: {body}");
    let at = |p: &str| errors.iter().find(|e| e["path"] == p).cloned();
    assert_eq!(
        at("services.news.retry.attempts").unwrap()["line"],
        4,
        "{body}"
    );
    assert!(at("services.news.load_balancer").is_some(), "{body}");
    assert!(at("services.news.timeuot").is_some(), "{body}");

    // JSON by Content-Type, same validation.
    let (status, body) = cp.http(
        Method::PUT,
        "/api/v1/config",
        Some((
            "application/json",
            r#"{"services":{"news":{"endpoints":[{"address":"x"}]}}}"#,
        )),
        None,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["errors"][0]["path"]
            .as_str()
            .unwrap()
            .starts_with("services.news.endpoints")
    );

    let config = cp.get("/api/v1/config");
    assert_eq!(config["version"], 1, "running config untouched");
    assert_eq!(config["source"], V1);
    assert_eq!(
        cp.get("/api/v1/snapshot")["version"],
        snapshot_before,
        "nothing published"
    );
    assert_eq!(
        cp.get("/api/v1/config/versions")["versions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    std::fs::write(dir.path().join("bad.yaml"), bad).unwrap();
    let out = cp.run(&["apply", "-f", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("bad.yaml:4: services.news.retry.attempts"),
        "{err}"
    );
    assert!(err.contains("3 errors; nothing changed"), "{err}");
}

#[test]
fn serve_refuses_an_invalid_config_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "services:\n  news:\n    retry: { attempts: 0 }\n",
    )
    .unwrap();
    let fail = Cp::try_start(dir.path(), &["--config", "bad.yaml"], &[])
        .err()
        .expect("refused");
    assert_eq!(fail.code, Some(1), "{}", fail.stderr);
    assert!(
        fail.stderr
            .contains("bad.yaml:3: services.news.retry.attempts"),
        "{}",
        fail.stderr
    );
    assert!(fail.stderr.contains("not starting"), "{}", fail.stderr);

    std::fs::write(dir.path().join("good.yaml"), V1).unwrap();
    let cp = Cp::start(dir.path(), &["--config", "good.yaml"]);
    let config = cp.get("/api/v1/config");
    assert_eq!(config["version"], 1);
    assert_eq!(config["origin"], "--config good.yaml");
    assert!(cp.stop().success());
    // The same file at the next start adds no version.
    let cp = Cp::start(dir.path(), &["--config", "good.yaml"]);
    assert_eq!(
        cp.get("/api/v1/config/versions")["versions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn registrations_that_expired_while_stopped_are_gone_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Cp::start(dir.path(), &[]);
    assert!(
        cp.run(&["register", "news", "127.0.0.1:9001", "--ttl", "1s"])
            .status
            .success()
    );
    assert!(
        cp.run(&["register", "news", "127.0.0.1:9002", "--ttl", "1h"])
            .status
            .success()
    );
    // SIGKILL: no chance to expire anything on the way out.
    drop(cp);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let cp = Cp::start(dir.path(), &[]);
    let snapshot = cp.get("/api/v1/snapshot");
    let addrs: Vec<&str> = snapshot["discovered"]["news"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["address"].as_str().unwrap())
        .collect();
    assert_eq!(addrs, ["127.0.0.1:9002"], "{snapshot}");
}

#[test]
fn restart_keeps_state() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("v1.yaml"), V1).unwrap();
    let cp = Cp::start(dir.path(), &[]);
    assert!(cp.run(&["apply", "-f", "v1.yaml"]).status.success());
    let out = cp.run(&[
        "register",
        "news",
        "127.0.0.1:9001",
        "--weight",
        "4",
        "--label",
        "version=v2",
        "--ttl",
        "1h",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        cp.run(&["register", "news", "127.0.0.1:9002", "--id", "forever"])
            .status
            .success()
    );
    assert!(
        cp.run(&["intention", "create", "web", "news", "--deny"])
            .status
            .success()
    );
    let before = cp.get("/api/v1/snapshot");
    assert!(cp.stop().success());

    let cp = Cp::start(dir.path(), &[]);
    let config = cp.get("/api/v1/config");
    assert_eq!(config["version"], 2, "apply + intention: {config}");
    let after = cp.get("/api/v1/snapshot");
    assert_eq!(
        after["discovered"], before["discovered"],
        "registrations are back"
    );
    let news = cp.get("/api/v1/services/news");
    let eps = news["endpoints"].as_array().unwrap();
    assert_eq!(eps.len(), 3, "{news}");
    let reg = eps
        .iter()
        .find(|e| e["address"] == "127.0.0.1:9001")
        .unwrap();
    assert_eq!(reg["state"], "registered");
    assert_eq!(reg["weight"], 4);
    assert_eq!(reg["labels"]["version"], "v2");
    assert!(reg["expires_in_ms"].as_u64().unwrap() > 3_000_000, "{reg}");
    let out = cp.run(&["get", "intentions"]);
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["web", "news", "deny"]),
        "{}",
        stdout(&out)
    );
}

#[test]
fn corrupt_database_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("mesh-data")).unwrap();
    let db = dir.path().join("mesh-data/mesh.db");
    std::fs::write(
        &db,
        b"this is not a database at all, just text. ".repeat(200),
    )
    .unwrap();
    let fail = Cp::try_start(dir.path(), &[], &[]).err().expect("refused");
    assert_eq!(fail.code, Some(2), "{}", fail.stderr);
    assert!(
        fail.stderr.contains("mesh-data/mesh.db"),
        "names the file: {}",
        fail.stderr
    );
    assert!(
        fail.stderr.contains("corrupt or not a SQLite database"),
        "{}",
        fail.stderr
    );
}

#[test]
fn locked_database_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Cp::start(dir.path(), &[]);
    let fail = Cp::try_start(dir.path(), &[], &[])
        .err()
        .expect("second serve refused");
    assert_eq!(fail.code, Some(2), "{}", fail.stderr);
    assert!(
        fail.stderr.contains("mesh-data/mesh.db"),
        "names the file: {}",
        fail.stderr
    );
    assert!(
        fail.stderr.contains("locked by another process"),
        "{}",
        fail.stderr
    );

    // A lock held by another SQLite user (not a meshctl) is reported alike.
    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir(other.path().join("mesh-data")).unwrap();
    let conn = rusqlite::Connection::open(other.path().join("mesh-data/mesh.db")).unwrap();
    conn.execute_batch("CREATE TABLE t (x); BEGIN EXCLUSIVE; INSERT INTO t VALUES (1);")
        .unwrap();
    let fail = Cp::try_start(other.path(), &[], &[])
        .err()
        .expect("refused while locked");
    assert!(
        fail.stderr.contains("locked by another process"),
        "{}",
        fail.stderr
    );
    conn.execute_batch("COMMIT;").unwrap();
    drop(conn);
    Cp::start(other.path(), &[]);
}

#[test]
fn public_address_needs_a_token_or_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let fail = Cp::try_start(dir.path(), &["--http-addr", "0.0.0.0:0"], &[])
        .err()
        .expect("refused");
    assert_eq!(fail.code, Some(2));
    assert!(fail.stderr.contains("0.0.0.0:0"), "{}", fail.stderr);
    assert!(fail.stderr.contains("without a token"), "{}", fail.stderr);
    assert!(
        !dir.path().join("mesh-data").exists(),
        "refused before touching the store"
    );

    let cp = Cp::start(
        dir.path(),
        &["--http-addr", "0.0.0.0:0", "--token", "s3cret"],
    );
    drop(cp);
    Cp::start(dir.path(), &["--grpc-addr", "0.0.0.0:0", "--insecure"]);
    Cp::try_start(
        dir.path(),
        &[],
        &[
            ("MESH_CP_HTTP_ADDR", "0.0.0.0:0"),
            ("MESH_CP_INSECURE", "true"),
        ],
    )
    .expect("MESH_CP_INSECURE=true");
}
