//! Intentions through the REST API and the CLI: create, list, update,
//! delete, as in Consul; each change is a config version.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod serve_harness;

use http::{Method, StatusCode};
use serve_harness::{Cp, stderr, stdout};

#[test]
fn intentions_crud() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Cp::start(dir.path(), &[]);
    let (status, body) = cp.json(
        Method::POST,
        "/api/v1/intentions",
        r#"{"source":"app-ui","destination":"news","action":"allow"}"#,
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["config_version"], 1);
    let (status, _) = cp.json(
        Method::POST,
        "/api/v1/intentions",
        r#"{"source":"app-ui","destination":"news","action":"deny"}"#,
    );
    assert_eq!(status, StatusCode::CONFLICT, "one intention per pair");

    let one = cp.get("/api/v1/intentions/app-ui/news");
    assert_eq!(one["action"], "allow");

    // Update to L7 permissions; the source/destination come from the URL.
    let (status, body) = cp.json(
        Method::PUT,
        "/api/v1/intentions/app-ui/news",
        r#"{"permissions":[{"action":"allow","path_prefix":"/api","methods":["GET"]}]}"#,
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["created"], false);
    let one = cp.get("/api/v1/intentions/app-ui/news");
    assert_eq!(one["permissions"][0]["methods"][0], "GET");

    // Upsert creates; `*` works as a path segment.
    let (status, body) = cp.json(
        Method::PUT,
        "/api/v1/intentions/*/news",
        r#"{"action":"deny"}"#,
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["created"], true);

    let list = cp.get("/api/v1/intentions");
    assert_eq!(list["intentions"].as_array().unwrap().len(), 2);
    assert_eq!(list["config_version"], 3);
    // The intentions are part of the running config (one source of truth).
    let config = cp.get("/api/v1/config");
    assert_eq!(config["config"]["intentions"], list["intentions"]);

    // Invalid: 400 with paths relative to the intention; nothing changes.
    let (status, body) = cp.json(
        Method::PUT,
        "/api/v1/intentions/app-ui/news",
        r#"{"action":"maybe"}"#,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errors"][0]["path"], "action", "{body}");
    let (status, body) = cp.json(
        Method::PUT,
        "/api/v1/intentions/app-ui/news",
        r#"{"source":"other","action":"deny"}"#,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = cp.json(
        Method::POST,
        "/api/v1/intentions",
        r#"{"source":"Not A Name","destination":"news","action":"deny"}"#,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errors"][0]["path"], "source", "{body}");
    let (status, body) = cp.json(Method::POST, "/api/v1/intentions", r#"{"action":"deny"}"#);
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["errors"].as_array().unwrap().len(),
        2,
        "source and destination"
    );
    assert_eq!(cp.get("/api/v1/config")["version"], 3, "nothing changed");

    let (status, _) = cp.http(Method::DELETE, "/api/v1/intentions/*/news", None, None);
    assert_eq!(status, StatusCode::OK);
    let (status, _) = cp.http(Method::DELETE, "/api/v1/intentions/*/news", None, None);
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = cp.http(Method::GET, "/api/v1/intentions/*/news", None, None);
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        cp.get("/api/v1/intentions")["intentions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn intention_cli() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Cp::start(dir.path(), &[]);
    let out = cp.run(&["intention", "create", "web", "news", "--allow"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cp.run(&["intention", "create", "web", "news", "--deny"]);
    assert_eq!(out.status.code(), Some(1), "exists already");
    assert!(stderr(&out).contains("exists already"), "{}", stderr(&out));
    let out = cp.run(&["intention", "create", "web", "news", "--deny", "--replace"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cp.run(&["intention", "create", "*", "news", "--deny"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cp.run(&["intention", "create", "a", "b"]);
    assert_eq!(out.status.code(), Some(2), "--allow or --deny is required");

    let out = cp.run(&["get", "intentions"]);
    let rows: Vec<Vec<String>> = stdout(&out)
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    assert_eq!(rows[0], ["SOURCE", "DESTINATION", "ACTION"]);
    assert_eq!(rows[1], ["web", "news", "deny"]);
    assert_eq!(rows[2], ["*", "news", "deny"]);

    let out = cp.run(&["get", "intentions", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["intentions"].as_array().unwrap().len(), 2);

    assert!(
        cp.run(&["intention", "delete", "web", "news"])
            .status
            .success()
    );
    let out = cp.run(&["intention", "delete", "web", "news"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
}

#[test]
fn namespaced_intentions_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Cp::start(dir.path(), &[]);
    // `ns/*` and `ns/name` as path segments: the `/` percent-encoded.
    let (status, body) = cp.json(
        Method::PUT,
        "/api/v1/intentions/prod%2F%2A/default%2Fnews",
        r#"{"action":"allow"}"#,
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["created"], true);
    let one = cp.get("/api/v1/intentions/prod%2F%2A/default%2Fnews");
    assert_eq!(one["source"], "prod/*");
    assert_eq!(one["destination"], "default/news");
    // `news` is `default/news`: the same pair again is refused.
    let (status, body) = cp.json(
        Method::POST,
        "/api/v1/intentions",
        r#"{"source":"prod/*","destination":"news","action":"deny"}"#,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("a second intention"), "{body}");
    // A wildcard namespace with a name is not a pattern.
    let (status, body) = cp.json(
        Method::POST,
        "/api/v1/intentions",
        r#"{"source":"*/web","destination":"news","action":"deny"}"#,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errors"][0]["path"], "source", "{body}");
}
