//! mTLS end to end through `Mesh`/`MeshClient` and `tls::serve`: real
//! rustls on both ends on 127.0.0.1, certificates from a throwaway CA.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

mod tls_common;

use mesh_tests::tls::{Pki, Validity, spiffe};
use mesh_tower::error::{ErrorKind, kind};
use mesh_tower::tls::{IdentityMismatch, MeshAcceptor, TlsMode};
use rustls_pki_types::pem::PemObject;
use tls_common::{Server, config, get, mesh, tls_for};

#[tokio::test]
async fn mtls_http1_and_h2_through_the_mesh_server_sees_the_caller_identity() {
    let pki = Pki::new("mesh");
    let server_tls = tls_for(&pki, &pki.leaf("news-service", "news"), TlsMode::Strict);
    assert_eq!(server_tls.identity().as_str(), spiffe("news-service"));
    let server = Server::start(MeshAcceptor::new(&server_tls)).await;
    let client_tls = tls_for(&pki, &pki.leaf("app-ui", "app"), TlsMode::Strict);

    let http1 = mesh(
        "news-service",
        server.addr,
        Some(client_tls.clone()),
        "services:\n  news-service: {}\n",
    );
    let body = get(&http1.client("news-service")).await.unwrap();
    assert_eq!(body, format!("{} HTTP/1.1", spiffe("app-ui")));

    let h2 = mesh(
        "news-service",
        server.addr,
        Some(client_tls),
        "services:\n  news-service: { protocol: http2 }\n",
    );
    let client = h2.client("news-service");
    for _ in 0..3 {
        let body = get(&client).await.unwrap();
        assert_eq!(body, format!("{} HTTP/2.0", spiffe("app-ui")));
    }
    server.shutdown().await;
}

/// Finds the typed mismatch in an error's cause chain.
fn find_mismatch(err: &(dyn std::error::Error + 'static)) -> Option<IdentityMismatch> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(m) = e.downcast_ref::<IdentityMismatch>() {
            return Some(m.clone());
        }
        cur = e.source();
    }
    None
}

#[tokio::test]
async fn the_client_refuses_a_server_with_another_spiffe_id() {
    let pki = Pki::new("mesh");
    // The server at news-service's address is someone else.
    let server_tls = tls_for(&pki, &pki.leaf("billing", "billing"), TlsMode::Strict);
    let server = Server::start(MeshAcceptor::new(&server_tls)).await;
    let client_tls = tls_for(&pki, &pki.leaf("app-ui", "app"), TlsMode::Strict);
    let m = mesh(
        "news-service",
        server.addr,
        Some(client_tls),
        "services:\n  news-service: {}\n",
    );

    let err = get(&m.client("news-service")).await.unwrap_err();
    assert_eq!(kind(err.as_ref()), ErrorKind::ConnectFailure, "{err}");
    let mismatch =
        find_mismatch(err.as_ref()).unwrap_or_else(|| panic!("no IdentityMismatch in {err:?}"));
    assert_eq!(mismatch.expected.as_str(), spiffe("news-service"));
    assert_eq!(
        mismatch.presented.as_ref().map(|p| p.as_str()),
        Some(spiffe("billing").as_str())
    );
    assert!(
        mismatch.to_string().contains(&spiffe("billing")),
        "{mismatch}"
    );
    // A server from the right CA without any SPIFFE ID is refused too
    // (our loader would not load such a certificate: use rustls directly).
    let anon = pki.issue(None, Validity::Current, "anon");
    let config = rustls::ServerConfig::builder_with_provider(mesh_tower::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![
                rustls_pki_types::CertificateDer::from_pem_slice(anon.cert_pem.as_bytes()).unwrap(),
            ],
            rustls_pki_types::PrivateKeyDer::from_pem_slice(anon.key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
    let anon_server = Server::start(MeshAcceptor::from_config(
        std::sync::Arc::new(config),
        TlsMode::Strict,
    ))
    .await;
    let client_tls = tls_for(&pki, &pki.leaf("app-ui", "app"), TlsMode::Strict);
    let m = mesh(
        "news-service",
        anon_server.addr,
        Some(client_tls),
        "services:\n  news-service: {}\n",
    );
    let err = get(&m.client("news-service")).await.unwrap_err();
    let mismatch =
        find_mismatch(err.as_ref()).unwrap_or_else(|| panic!("no IdentityMismatch in {err:?}"));
    assert_eq!(mismatch.presented, None);
    assert!(mismatch.to_string().contains("no SPIFFE ID"), "{mismatch}");
    drop(server);
}

#[tokio::test]
async fn a_config_identity_overrides_the_default_expectation() {
    let pki = Pki::new("mesh");
    let prod = "spiffe://mesh.local/ns/prod/svc/news";
    let leaf = pki.issue(Some(prod), Validity::Current, "news-prod");
    let server_tls = tls_for(&pki, &leaf, TlsMode::Strict);
    let server = Server::start(MeshAcceptor::new(&server_tls)).await;
    let client_tls = tls_for(&pki, &pki.leaf("app-ui", "app"), TlsMode::Strict);

    // Default expectation (ns/default): refused.
    let plain = mesh(
        "news",
        server.addr,
        Some(client_tls.clone()),
        "services:\n  news: {}\n",
    );
    let err = get(&plain.client("news")).await.unwrap_err();
    assert!(find_mismatch(err.as_ref()).is_some(), "{err:?}");

    let with_override = mesh(
        "news",
        server.addr,
        Some(client_tls),
        &format!("services:\n  news: {{ identity: \"{prod}\" }}\n"),
    );
    let body = get(&with_override.client("news")).await.unwrap();
    assert!(body.starts_with(&spiffe("app-ui")), "{body}");
    drop(server);
}

#[tokio::test]
async fn permissive_takes_plaintext_and_mtls_on_one_port_strict_refuses_plaintext() {
    let pki = Pki::new("mesh");
    let server_tls = tls_for(&pki, &pki.leaf("news-service", "news"), TlsMode::Permissive);
    let permissive = Server::start(MeshAcceptor::new(&server_tls)).await;
    let client_tls = tls_for(&pki, &pki.leaf("app-ui", "app"), TlsMode::Strict);

    let plain = mesh(
        "news-service",
        permissive.addr,
        None,
        "services:\n  news-service: {}\n",
    );
    let mtls = mesh(
        "news-service",
        permissive.addr,
        Some(client_tls),
        "services:\n  news-service: {}\n",
    );
    for _ in 0..2 {
        assert_eq!(
            get(&plain.client("news-service")).await.unwrap(),
            "anonymous HTTP/1.1"
        );
        assert_eq!(
            get(&mtls.client("news-service")).await.unwrap(),
            format!("{} HTTP/1.1", spiffe("app-ui"))
        );
    }

    let strict = Server::start(MeshAcceptor::with_mode(&server_tls, TlsMode::Strict)).await;
    let plain = mesh(
        "news-service",
        strict.addr,
        None,
        "services:\n  news-service: {}\n",
    );
    let err = get(&plain.client("news-service")).await.unwrap_err();
    assert!(
        matches!(
            kind(err.as_ref()),
            ErrorKind::Reset | ErrorKind::ConnectFailure | ErrorKind::Other
        ),
        "{err}"
    );

    let disabled = Server::start(MeshAcceptor::with_mode(&server_tls, TlsMode::Disabled)).await;
    let plain = mesh(
        "news-service",
        disabled.addr,
        None,
        "services:\n  news-service: {}\n",
    );
    assert_eq!(
        get(&plain.client("news-service")).await.unwrap(),
        "anonymous HTTP/1.1"
    );
    permissive.shutdown().await;
    strict.shutdown().await;
    disabled.shutdown().await;
}

#[tokio::test]
async fn the_environment_makes_clients_and_acceptors_mtls() {
    let pki = Pki::new("mesh");
    let news = pki.leaf("news-service", "news");
    let app = pki.leaf("app-ui", "app");
    let env = |leaf: &mesh_tests::tls::Leaf, mode: &str, endpoint: Option<std::net::SocketAddr>| {
        let mut vars: Vec<(std::ffi::OsString, std::ffi::OsString)> = vec![
            ("MESH_TLS_CERT".into(), leaf.cert.clone().into()),
            ("MESH_TLS_KEY".into(), leaf.key.clone().into()),
            ("MESH_TLS_CA".into(), pki.ca().into()),
            ("MESH_TLS_MODE".into(), mode.into()),
        ];
        if let Some(addr) = endpoint {
            vars.push((
                "MESH_ENDPOINTS_NEWS_SERVICE".into(),
                addr.to_string().into(),
            ));
        }
        mesh_core::config::MeshEnv::from_vars_os(vars).unwrap()
    };
    let server_mesh = mesh_tower::Mesh::builder()
        .env(&env(&news, "permissive", None))
        .build()
        .unwrap();
    let acceptor = server_mesh.acceptor();
    assert_eq!(acceptor.mode(), TlsMode::Permissive);
    assert_eq!(
        server_mesh.tls().unwrap().identity().as_str(),
        spiffe("news-service")
    );
    let server = Server::start(acceptor).await;

    let client_mesh = mesh_tower::Mesh::builder()
        .env(&env(&app, "strict", Some(server.addr)))
        .build()
        .unwrap();
    let body = get(&client_mesh.client("news-service")).await.unwrap();
    assert_eq!(body, format!("{} HTTP/1.1", spiffe("app-ui")));

    // Only some of the files: a build error naming the missing variable.
    let partial = mesh_core::config::MeshEnv::from_vars_os([(
        std::ffi::OsString::from("MESH_TLS_CERT"),
        std::ffi::OsString::from(&app.cert),
    )])
    .unwrap();
    let err = mesh_tower::Mesh::builder()
        .env(&partial)
        .build()
        .unwrap_err();
    assert!(matches!(err, mesh_tower::MeshError::Tls(_)), "{err}");
    assert!(err.to_string().contains("MESH_TLS_KEY"), "{err}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_stalled_handshake_times_out_and_the_accept_loop_goes_on() {
    use tokio::io::AsyncReadExt;
    let pki = Pki::new("mesh");
    let news = pki.leaf("news-service", "news");
    let server_tls = mesh_tower::tls::Tls::load(
        mesh_tower::tls::TlsConfig::new(&news.cert, &news.key, pki.ca())
            .handshake_timeout(std::time::Duration::from_millis(200)),
    )
    .unwrap();
    let server = Server::start(MeshAcceptor::new(&server_tls)).await;
    // Connects and says nothing: dropped by the server after the timeout.
    let mut stalled = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    // Garbage instead of a ClientHello: refused, logged.
    let mut garbage = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut garbage, b"GET / HTTP/1.1\r\n\r\n")
        .await
        .unwrap();

    let client_tls = tls_for(&pki, &pki.leaf("app-ui", "app"), TlsMode::Strict);
    let m = mesh(
        "news-service",
        server.addr,
        Some(client_tls),
        "services:\n  news-service: {}\n",
    );
    assert!(
        get(&m.client("news-service"))
            .await
            .unwrap()
            .starts_with(&spiffe("app-ui"))
    );

    let mut buf = [0u8; 64];
    let started = std::time::Instant::now();
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), stalled.read(&mut buf))
        .await
        .expect("the stalled connection was never closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "the server wrote to a stalled connection");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), garbage.read(&mut buf))
        .await
        .expect("the garbage connection was never closed")
        .unwrap_or(0);
    assert!(
        !String::from_utf8_lossy(&buf[..n]).contains("200"),
        "plaintext served by strict"
    );
    // Still serving.
    assert!(
        get(&m.client("news-service"))
            .await
            .unwrap()
            .starts_with(&spiffe("app-ui"))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_existing_client_follows_an_identity_change_in_config() {
    let pki = Pki::new("mesh");
    // news-service's instance presents `billing` (a migration, say).
    let server_tls = tls_for(&pki, &pki.leaf("billing", "billing"), TlsMode::Strict);
    let server = Server::start(MeshAcceptor::new(&server_tls)).await;
    let client_tls = tls_for(&pki, &pki.leaf("app-ui", "app"), TlsMode::Strict);
    let first = config("services:\n  news-service: {}\n");
    let (tx, rx) = tokio::sync::watch::channel(std::sync::Arc::new(first.clone()));
    let m = mesh_tower::Mesh::builder()
        .config_updates(rx)
        .endpoints("news-service", vec![mesh_core::Endpoint::new(server.addr)])
        .tls(client_tls)
        .build()
        .unwrap();
    // Made once, kept: as an application keeps its clients.
    let client = m.client("news-service");
    let err = get(&client).await.unwrap_err();
    assert!(find_mismatch(err.as_ref()).is_some(), "{err:?}");

    // The config now expects `billing` from news-service: the same client
    // connects.
    let mut next = first.clone();
    let svc = next.services.entry("news-service".into()).or_default();
    svc.identity = Some(spiffe("billing").parse().unwrap());
    tx.send(std::sync::Arc::new(next)).unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut last = None;
    while tokio::time::Instant::now() < deadline {
        match get(&client).await {
            Ok(_) => {
                last = None;
                break;
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(last.is_none(), "never followed: {last:?}");

    // And back: the default identity again. The connector that expects it
    // never got a connection through, so the next request handshakes anew
    // and is refused.
    tx.send(std::sync::Arc::new(first)).unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut refused = false;
    while tokio::time::Instant::now() < deadline && !refused {
        refused = matches!(get(&client).await, Err(ref e) if find_mismatch(e.as_ref()).is_some());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(refused, "never switched back");
}
