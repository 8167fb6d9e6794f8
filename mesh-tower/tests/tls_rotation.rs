//! Certificate rotation under load, and session resumption, with real
//! rustls on both ends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

mod tls_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use mesh_core::config::Protocol;
use mesh_core::identity::SpiffeId;
use mesh_tests::tls::{Pki, Validity, spiffe};
use mesh_tower::Mesh;
use mesh_tower::body::MeshBody;
use mesh_tower::connect::{ConnectConfig, Connector};
use mesh_tower::tls::{MeshAcceptor, Tls, TlsConfig, TlsMode};
use rustls_pki_types::ServerName;
use rustls_pki_types::pem::PemObject;
use tls_common::{Server, config, get, tls_for};
use tower::ServiceExt;

/// The certificate a fresh handshake with `addr` presents.
async fn presented(client: &Tls, addr: std::net::SocketAddr) -> Vec<u8> {
    let config = client
        .client_config(
            SpiffeId::parse(&spiffe("news-service")).unwrap(),
            vec![b"http/1.1".to_vec()],
        )
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::IpAddress(addr.ip().into());
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0]
        .as_ref()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_certificate_under_load_fails_no_request() {
    let pki = Pki::new("mesh");
    let leaf = pki.leaf("news-service", "news");
    let server_tls = Tls::load(
        TlsConfig::new(&leaf.cert, &leaf.key, pki.ca()).reload_interval(Duration::from_millis(50)),
    )
    .unwrap();
    let server = Server::start(MeshAcceptor::new(&server_tls)).await;
    let client_tls = tls_for(&pki, &pki.leaf("app-ui", "app"), TlsMode::Strict);
    let old_der = presented(&client_tls, server.addr).await;

    // No idle pooling: every request is a new connection and handshake.
    let mesh = Mesh::builder()
        .config(config("services:\n  news-service: {}\n"))
        .endpoints("news-service", vec![mesh_core::Endpoint::new(server.addr)])
        .connect(ConnectConfig {
            pool_max_idle_per_host: 0,
            ..ConnectConfig::default()
        })
        .tls(client_tls.clone())
        .build()
        .unwrap();
    let client = mesh.client("news-service");
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (client, stop, ok, failed) = (client.clone(), stop.clone(), ok.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            for _ in 0..2_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match get(&client).await {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        failed.lock().push(e.to_string());
                        0
                    }
                };
            }
        }));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while ok.load(Ordering::Relaxed) < 40 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Rotate: same identity, new key; certificate then key, not atomically.
    let (cert, key) = pki.issue_pem(Some(&spiffe("news-service")), Validity::Current);
    let new_der = rustls_pki_types::CertificateDer::from_pem_slice(cert.as_bytes())
        .unwrap()
        .as_ref()
        .to_vec();
    std::fs::write(&leaf.cert, &cert).unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    std::fs::write(&leaf.key, &key).unwrap();
    let rotated_at = ok.load(Ordering::Relaxed);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = presented(&client_tls, server.addr).await;
        if now == new_der {
            break;
        }
        assert_eq!(now, old_der, "neither the old nor the new certificate");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate was never presented"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Keep the load on a little after the swap.
    let after = ok.load(Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while ok.load(Ordering::Relaxed) < after + 40 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let failed = failed.lock().clone();
    assert!(
        failed.is_empty(),
        "{} requests failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    let total = ok.load(Ordering::Relaxed);
    assert!(
        total > rotated_at && total >= after + 40,
        "load stalled: {total} ok, {after} at swap"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_second_connection_resumes_the_session() {
    let pki = Pki::new("mesh");
    let server_tls = tls_for(&pki, &pki.leaf("news-service", "news"), TlsMode::Strict);
    let client_tls = tls_for(&pki, &pki.leaf("app-ui", "app"), TlsMode::Strict);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = MeshAcceptor::new(&server_tls);
    let (kinds_tx, mut kinds) = tokio::sync::mpsc::unbounded_channel();
    let server = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let stream = acceptor.accept(tcp).await.unwrap();
            let conn = stream.tls_connection().unwrap();
            kinds_tx
                .send((conn.handshake_kind(), stream.info().identity.clone()))
                .unwrap();
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
                hyper_util::rt::TokioIo::new(stream),
                hyper::service::service_fn(|_| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(MeshBody::empty()))
                }),
            ));
        }
    });

    let connector = Connector::tls(
        Protocol::Http,
        &ConnectConfig {
            pool_max_idle_per_host: 0,
            ..ConnectConfig::default()
        },
        &client_tls,
        SpiffeId::parse(&spiffe("news-service")).unwrap(),
    )
    .unwrap();
    assert!(connector.is_tls());
    for _ in 0..2 {
        let req = http::Request::get(format!("http://{addr}/"))
            .body(MeshBody::empty())
            .unwrap();
        let resp = connector.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        drop(resp);
        // Let the connection close before the next one.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (first, id1) = kinds.recv().await.unwrap();
    let (second, id2) = kinds.recv().await.unwrap();
    assert_eq!(first, Some(rustls::HandshakeKind::Full));
    assert_eq!(second, Some(rustls::HandshakeKind::Resumed));
    // The resumed session still knows who the client is.
    assert_eq!(id1.0.unwrap().as_str(), spiffe("app-ui"));
    assert_eq!(id2.0.unwrap().as_str(), spiffe("app-ui"));
    server.abort();
}
