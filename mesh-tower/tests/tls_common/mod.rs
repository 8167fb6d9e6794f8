//! Shared by the tls_* tests: a real axum server behind a `MeshAcceptor`,
//! answering with the caller's SPIFFE ID, and mesh clients.
#![allow(dead_code)]

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use mesh_core::config::{Format, parse_str};
use mesh_core::{Endpoint, MeshConfig};
use mesh_tests::tls::{Leaf, Pki};
use mesh_tower::ext::PeerIdentity;
use mesh_tower::tls::{MeshAcceptor, Tls, TlsConfig, TlsMode};
use mesh_tower::{BoxError, Mesh, MeshClient};
use tower::ServiceExt;

/// A server on 127.0.0.1:0 answering `GET /` with the peer identity (or
/// `anonymous`) and the HTTP version; stopped on drop.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    pub async fn start(acceptor: MeshAcceptor) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app =
            axum::Router::new().route(
                "/",
                axum::routing::get(
                    |axum::Extension(peer): axum::Extension<PeerIdentity>,
                     version: http::Version| async move {
                        let who = peer
                            .0
                            .map_or_else(|| "anonymous".to_string(), |id| id.as_str().to_string());
                        format!("{who} {version:?}")
                    },
                ),
            );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(mesh_tower::tls::serve(
            listener,
            acceptor,
            app,
            async move {
                let _ = rx.await;
            },
        ));
        Server {
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops accepting and waits for open connections to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

pub fn tls_for(pki: &Pki, leaf: &Leaf, mode: TlsMode) -> Tls {
    Tls::load(TlsConfig::new(&leaf.cert, &leaf.key, pki.ca()).mode(mode)).unwrap()
}

pub fn config(yaml: &str) -> MeshConfig {
    parse_str(yaml, Format::Yaml, "mesh.yaml").unwrap()
}

/// A mesh whose `service` lives at `addr`, over mTLS with `tls` (or
/// plaintext).
pub fn mesh(service: &str, addr: SocketAddr, tls: Option<Tls>, yaml: &str) -> Mesh {
    let mut b = Mesh::builder()
        .config(config(yaml))
        .endpoints(service, vec![Endpoint::new(addr)]);
    if let Some(tls) = tls {
        b = b.tls(tls);
    }
    b.build().unwrap()
}

/// `GET /` through `client`: the body, or the error.
pub async fn get(client: &MeshClient) -> Result<String, BoxError> {
    let req = http::Request::get("/").body(Empty::<Bytes>::new())?;
    let resp = client.clone().oneshot(req).await?;
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}
