//! mTLS against real third-party TLS clients: curl and `openssl s_client`
//! (../shared/PEERS.md) calling a `mesh_tower::tls::serve` server.
//!
//! Each test skips with a message when curl/openssl is missing, and fails
//! when `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mesh_tests::tls::{Leaf, Pki, Validity, peer_available, spiffe};
use mesh_tower::ext::PeerIdentity;
use mesh_tower::tls::{MeshAcceptor, Tls, TlsConfig, TlsMode};

/// A server answering `GET /` with the caller's identity; counts requests.
struct Server {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn server(pki: &Pki, mode: TlsMode) -> Server {
    let leaf = pki.leaf("news-service", "news");
    let tls = Tls::load(TlsConfig::new(&leaf.cert, &leaf.key, pki.ca()).mode(mode)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(
            move |axum::Extension(peer): axum::Extension<PeerIdentity>| {
                counter.fetch_add(1, Ordering::Relaxed);
                async move {
                    peer.0
                        .map_or_else(|| "anonymous".to_string(), |id| id.as_str().to_string())
                }
            },
        ),
    );
    let task = tokio::spawn(mesh_tower::tls::serve(
        listener,
        MeshAcceptor::new(&tls),
        app,
        std::future::pending(),
    ));
    Server { addr, hits, task }
}

async fn run(mut cmd: Command, stdin: &'static str) -> Output {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let _ = input.write_all(stdin.as_bytes());
        // s_client quits at end of input once the exchange is done.
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(input);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn curl(url: &str, ca: Option<&Path>, client: Option<&Leaf>, extra: &[&str]) -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "--tlsv1.3"]);
    if let Some(ca) = ca {
        cmd.arg("--cacert").arg(ca);
    }
    if let Some(leaf) = client {
        cmd.arg("--cert")
            .arg(&leaf.cert)
            .arg("--key")
            .arg(&leaf.key);
    }
    cmd.args(extra).arg(url);
    cmd
}

fn s_client(addr: SocketAddr, ca: &Path, client: Option<&Leaf>) -> Command {
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-connect",
        &addr.to_string(),
        "-tls1_3",
        "-ign_eof",
    ])
    .arg("-CAfile")
    .arg(ca);
    if let Some(leaf) = client {
        cmd.arg("-cert").arg(&leaf.cert).arg("-key").arg(&leaf.key);
    }
    cmd
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn curl_with_a_mesh_certificate_is_served_with_its_identity_over_http1_and_h2() {
    if !peer_available("curl") {
        return;
    }
    let pki = Pki::new("mesh");
    let s = server(&pki, TlsMode::Strict).await;
    let app = pki.leaf("app-ui", "app");
    let url = format!("https://127.0.0.1:{}/", s.addr.port());
    for version in ["--http1.1", "--http2"] {
        let o = run(
            curl(
                &url,
                Some(&pki.ca()),
                Some(&app),
                &[version, "-w", " %{http_version}"],
            ),
            "",
        )
        .await;
        assert!(o.status.success(), "{}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let want = if version == "--http2" { "2" } else { "1.1" };
        assert_eq!(out, format!("{} {want}", spiffe("app-ui")), "{}", text(&o));
    }
    assert_eq!(s.hits.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn strict_refuses_no_certificate_another_ca_and_an_expired_one_at_the_handshake() {
    if !peer_available("curl") || !peer_available("openssl") {
        return;
    }
    let pki = Pki::new("mesh");
    let other_ca = Pki::new("other");
    let s = server(&pki, TlsMode::Strict).await;
    let url = format!("https://127.0.0.1:{}/", s.addr.port());
    let foreign = other_ca.leaf("app-ui", "foreign");
    let expired = pki.issue(Some(&spiffe("app-ui")), Validity::Expired, "expired");

    let cases: [(&str, Option<&Leaf>, &str); 3] = [
        ("no certificate", None, "certificate required"),
        ("another CA", Some(&foreign), "unknown ca"),
        ("expired", Some(&expired), "certificate expired"),
    ];
    for (what, leaf, alert) in cases {
        let o = run(curl(&url, Some(&pki.ca()), leaf, &[]), "").await;
        assert!(
            !o.status.success(),
            "curl with {what} succeeded: {}",
            text(&o)
        );
        let o = run(s_client(s.addr, &pki.ca(), leaf), "GET / HTTP/1.0\r\n\r\n").await;
        let out = text(&o);
        assert!(
            out.contains(alert),
            "openssl with {what}: no `{alert}` alert: {out}"
        );
        assert!(
            !out.contains("HTTP/1.0 200") && !out.contains("HTTP/1.1 200"),
            "{what}: {out}"
        );
    }
    assert_eq!(
        s.hits.load(Ordering::Relaxed),
        0,
        "a refused client reached the handler"
    );

    // The same openssl call with a good certificate gets through.
    let app = pki.leaf("app-ui", "app");
    let o = run(
        s_client(s.addr, &pki.ca(), Some(&app)),
        "GET / HTTP/1.0\r\n\r\n",
    )
    .await;
    let out = text(&o);
    assert!(
        out.contains("200 OK") && out.contains(&spiffe("app-ui")),
        "{out}"
    );
}

#[tokio::test]
async fn permissive_serves_curl_in_plaintext_and_mtls_on_one_port_strict_refuses_plaintext() {
    if !peer_available("curl") {
        return;
    }
    let pki = Pki::new("mesh");
    let app = pki.leaf("app-ui", "app");
    let permissive = server(&pki, TlsMode::Permissive).await;
    let port = permissive.addr.port();
    let o = run(
        curl(&format!("http://127.0.0.1:{port}/"), None, None, &[]),
        "",
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "anonymous",
        "{}",
        text(&o)
    );
    let o = run(
        curl(
            &format!("https://127.0.0.1:{port}/"),
            Some(&pki.ca()),
            Some(&app),
            &[],
        ),
        "",
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        spiffe("app-ui"),
        "{}",
        text(&o)
    );
    // A TLS client without a certificate is anonymous in permissive mode.
    let o = run(
        curl(
            &format!("https://127.0.0.1:{port}/"),
            Some(&pki.ca()),
            None,
            &[],
        ),
        "",
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "anonymous",
        "{}",
        text(&o)
    );

    let strict = server(&pki, TlsMode::Strict).await;
    let o = run(
        curl(
            &format!("http://127.0.0.1:{}/", strict.addr.port()),
            None,
            None,
            &[],
        ),
        "",
    )
    .await;
    assert!(
        !o.status.success(),
        "plaintext accepted by strict: {}",
        text(&o)
    );
    assert_eq!(strict.hits.load(Ordering::Relaxed), 0);
}
