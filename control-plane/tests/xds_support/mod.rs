//! Shared helpers of the xDS tests: a control plane (xDS half) on a free
//! port, snapshots from YAML, and small HTTP backends.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use mesh_control_plane::state::{Snapshot, SnapshotTx, XdsStatus, snapshot_channel};
use mesh_core::Endpoint;
use mesh_core::config::{Format, parse_str};
use tokio::sync::oneshot;

/// A config from YAML (validated by the real parser).
pub fn config(yaml: &str) -> mesh_core::MeshConfig {
    match parse_str(yaml, Format::Yaml, "test.yaml") {
        Ok(c) => c,
        Err(e) => panic!("bad test config: {e}"),
    }
}

/// The xDS server on 127.0.0.1:0 (or `addr`), stopped by dropping `stop`.
pub struct Xds {
    pub addr: SocketAddr,
    pub tx: SnapshotTx,
    pub status: Arc<XdsStatus>,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<()>,
    version: u64,
}

impl Xds {
    pub async fn start(yaml: &str) -> Xds {
        Self::start_on("127.0.0.1:0".parse().unwrap(), yaml, BTreeMap::new()).await
    }

    pub async fn start_on(
        addr: SocketAddr,
        yaml: &str,
        discovered: BTreeMap<String, Vec<Endpoint>>,
    ) -> Xds {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = snapshot_channel(Snapshot {
            version: 1,
            config_version: 1,
            config: Arc::new(config(yaml)),
            discovered,
        });
        let status = Arc::new(XdsStatus::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let st = status.clone();
        let task = tokio::spawn(async move {
            mesh_control_plane::xds::serve(listener, rx, st, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Xds {
            addr,
            tx,
            status,
            stop: Some(stop),
            task,
            version: 1,
        }
    }

    /// Publishes a new snapshot.
    pub fn publish(&mut self, yaml: &str, discovered: BTreeMap<String, Vec<Endpoint>>) {
        self.version += 1;
        self.tx.send_replace(Arc::new(Snapshot {
            version: self.version,
            config_version: self.version,
            config: Arc::new(config(yaml)),
            discovered,
        }));
    }

    /// Stops the server and waits for it to end.
    pub async fn shutdown(mut self) {
        drop(self.stop.take());
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), self.task).await;
    }
}

/// An HTTP backend answering every request with `name`, on 127.0.0.1:0.
pub async fn backend(name: &'static str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move || async move { name });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}
