//! mTLS and intentions end to end on the real example binaries: news-service
//! and app-ui with certificates from a test PKI (`MESH_TLS_*`), the shipped
//! `examples/mesh.yaml` intentions, and curl as a third-party mTLS client.
//!
//! The curl tests skip with a message when curl is missing and fail when
//! `CI=true`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{Proc, command, spawn_listening};
use mesh_examples::ui::ApiNews;
use mesh_tests::tls::{Leaf, Pki, peer_available};

const NEWS: &str = env!("CARGO_BIN_EXE_news-service");
const APP_UI: &str = env!("CARGO_BIN_EXE_app-ui");

/// The intentions shipped with the examples: app-ui may call news-service,
/// prometheus may only `GET /metrics`, everyone else is denied.
fn shipped_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mesh.yaml")
}

/// `bin` with `leaf` as its certificate, in `mode`.
fn with_tls(bin: &str, pki: &Pki, leaf: &Leaf, mode: &str) -> Command {
    let mut cmd = command(bin);
    cmd.env("MESH_TLS_CERT", &leaf.cert)
        .env("MESH_TLS_KEY", &leaf.key)
        .env("MESH_TLS_CA", pki.ca())
        .env("MESH_TLS_MODE", mode);
    cmd
}

/// A plaintext `GET path` (HTTP/1.1, connection close): the status and the
/// body, or `None` when the server closes the connection without an answer.
fn plain_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    // A strict server may close before the request is fully written.
    let _ = tcp.write_all(request.as_bytes());
    let mut raw = Vec::new();
    let _ = tcp.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// curl over mTLS (TLS 1.3, verifying the server against the test CA via
/// its IP SAN), presenting `client` when given; `-w` appends the status.
fn curl(addr: SocketAddr, path: &str, pki: &Pki, client: Option<&Leaf>) -> Output {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "10",
        "--tlsv1.3",
        "-w",
        "\n%{http_code}",
    ])
    .arg("--cacert")
    .arg(pki.ca());
    if let Some(leaf) = client {
        cmd.arg("--cert")
            .arg(&leaf.cert)
            .arg("--key")
            .arg(&leaf.key);
    }
    cmd.arg(format!("https://{addr}{path}"));
    cmd.output().unwrap()
}

/// curl's status code (last line) and body; panics when curl failed.
fn curl_ok(o: &Output) -> (u16, String) {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "curl failed: {out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
    (code.trim().parse().unwrap(), body.to_string())
}

fn news_strict(pki: &Pki, config: &Path, metrics: bool) -> Proc {
    let leaf = pki.leaf("news-service", "news-service");
    let mut cmd = with_tls(NEWS, pki, &leaf, "strict");
    cmd.env("MESH_CONFIG", config);
    if metrics {
        cmd.env("MESH_METRICS_ADDR", "127.0.0.1:0");
    }
    spawn_listening(cmd)
}

fn app_ui(pki: &Pki, identity: &str, news: SocketAddr) -> Proc {
    let leaf = pki.leaf(identity, identity);
    // Permissive: the test calls app-ui in plaintext, app-ui calls
    // news-service over mTLS.
    let mut cmd = with_tls(APP_UI, pki, &leaf, "permissive");
    cmd.env("MESH_ENDPOINTS_NEWS_SERVICE", news.to_string());
    spawn_listening(cmd)
}

#[test]
fn app_ui_gets_the_news_over_mtls_and_another_identity_is_denied() {
    let pki = Pki::new("mesh");
    let news = news_strict(&pki, &shipped_config(), false);

    // app-ui's identity is allowed by `app-ui -> news-service: allow`.
    let ui = app_ui(&pki, "app-ui", news.addr);
    let (status, body) = plain_get(ui.addr, "/api/news").expect("app-ui answers");
    assert_eq!(status, 200, "{body}");
    let api: ApiNews = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(api.address, news.addr.to_string());
    assert_eq!(api.served_by, Some(news.addr.to_string()));
    assert!(!api.items.is_empty());

    // The same binary with another service's certificate: mTLS succeeds,
    // `* -> news-service: deny` answers 403, app-ui reports it as a 502.
    let billing = app_ui(&pki, "billing", news.addr);
    let (status, body) = plain_get(billing.addr, "/api/news").expect("app-ui answers");
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("403"), "{body}");

    // news-service itself takes no plaintext.
    assert_eq!(plain_get(news.addr, "/news"), None);
}

#[test]
fn curl_identities_get_what_the_shipped_intentions_say() {
    if !peer_available("curl") {
        return;
    }
    let pki = Pki::new("mesh");
    let news = news_strict(&pki, &shipped_config(), true);
    let prometheus = pki.leaf("prometheus", "prometheus");
    let app = pki.leaf("app-ui", "app-ui");
    let billing = pki.leaf("billing", "billing");

    // prometheus: GET /metrics only, on the app port, over mTLS.
    let (code, body) = curl_ok(&curl(news.addr, "/metrics", &pki, Some(&prometheus)));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("# TYPE"), "{body}");
    let (code, body) = curl_ok(&curl(news.addr, "/news", &pki, Some(&prometheus)));
    assert_eq!(code, 403, "{body}");
    assert!(!body.contains("prometheus"), "no policy detail: {body}");

    // app-ui: news-service is its upstream.
    let (code, body) = curl_ok(&curl(news.addr, "/news", &pki, Some(&app)));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"items\""), "{body}");

    // Any other identity: `* -> news-service: deny`, /metrics included.
    for path in ["/news", "/metrics", "/healthz"] {
        let (code, body) = curl_ok(&curl(news.addr, path, &pki, Some(&billing)));
        assert_eq!(code, 403, "billing {path}: {body}");
    }

    // The decisions are counted by rule.
    let (_, metrics) = curl_ok(&curl(news.addr, "/metrics", &pki, Some(&prometheus)));
    let denied: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("mesh_authz_denied"))
        .collect();
    assert!(
        denied
            .iter()
            .any(|l| l.contains("billing") && l.contains("* -> news-service")),
        "{denied:?}"
    );
}

#[test]
fn an_identity_without_intention_gets_the_default_policy() {
    if !peer_available("curl") {
        return;
    }
    let pki = Pki::new("mesh");
    let config = pki.dir().join("default-deny.yaml");
    std::fs::write(
        &config,
        "default_policy: deny\nintentions:\n  - { source: app-ui, destination: news-service, action: allow }\n  \
         - source: prometheus\n    destination: \"*\"\n    permissions:\n      \
         - { action: allow, path_exact: /metrics, methods: [GET] }\n",
    )
    .unwrap();
    let news = news_strict(&pki, &config, true);
    let billing = pki.leaf("billing", "billing");
    let app = pki.leaf("app-ui", "app-ui");
    let prometheus = pki.leaf("prometheus", "prometheus");

    let (code, body) = curl_ok(&curl(news.addr, "/news", &pki, Some(&billing)));
    assert_eq!(code, 403, "{body}");
    let (code, body) = curl_ok(&curl(news.addr, "/news", &pki, Some(&app)));
    assert_eq!(code, 200, "{body}");

    let (_, metrics) = curl_ok(&curl(news.addr, "/metrics", &pki, Some(&prometheus)));
    let denied: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("mesh_authz_denied"))
        .collect();
    assert!(
        denied
            .iter()
            .any(|l| l.contains("billing") && l.contains("rule=\"default\"")),
        "billing denied by the default policy: {denied:?}"
    );
}

#[test]
fn strict_refuses_plaintext_and_permissive_serves_both_on_one_port() {
    if !peer_available("curl") {
        return;
    }
    let pki = Pki::new("mesh");
    let leaf = pki.leaf("news-service", "news-service");
    let app = pki.leaf("app-ui", "app-ui");

    // No MESH_CONFIG: no intentions, default_policy allow.
    let strict = spawn_listening(with_tls(NEWS, &pki, &leaf, "strict"));
    assert_eq!(
        plain_get(strict.addr, "/healthz"),
        None,
        "plaintext refused"
    );
    let o = curl(strict.addr, "/healthz", &pki, None);
    assert!(!o.status.success(), "no client certificate: refused");
    let (code, body) = curl_ok(&curl(strict.addr, "/healthz", &pki, Some(&app)));
    assert_eq!((code, body.as_str()), (200, "ok\n"));

    let permissive = spawn_listening(with_tls(NEWS, &pki, &leaf, "permissive"));
    assert_eq!(
        plain_get(permissive.addr, "/healthz"),
        Some((200, "ok\n".to_string()))
    );
    let (code, body) = curl_ok(&curl(permissive.addr, "/healthz", &pki, Some(&app)));
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    // Permissive TLS without a client certificate is served too (anonymous).
    let (code, _) = curl_ok(&curl(permissive.addr, "/healthz", &pki, None));
    assert_eq!(code, 200);
}

#[test]
fn app_ui_refuses_a_news_service_with_the_wrong_identity() {
    let pki = Pki::new("mesh");
    // A server from the same CA, but presenting another service's identity.
    let impostor = pki.leaf("billing", "impostor");
    let news = spawn_listening(with_tls(NEWS, &pki, &impostor, "strict"));
    let ui = app_ui(&pki, "app-ui", news.addr);
    let (status, body) = plain_get(ui.addr, "/api/news").expect("app-ui answers");
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("spiffe://mesh.local/ns/default/svc/news-service")
            && body.contains("spiffe://mesh.local/ns/default/svc/billing"),
        "the error names the expected and the presented identity: {body}"
    );
}
