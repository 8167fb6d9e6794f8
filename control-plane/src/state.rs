//! The contract between the control plane's two halves.
//!
//! The store and REST API side ([`crate::store`], [`crate::api`]) owns the
//! truth and publishes a [`Snapshot`] on every change through a
//! `tokio::sync::watch` channel ([`SnapshotTx`] / [`SnapshotRx`]). The xDS side
//! ([`crate::xds`]) only reads snapshots and turns them into resources, and
//! reports back what its clients did ([`XdsStatus`]): which nodes are
//! connected, what each ACKed and NACKed, push counts and latency. The API
//! shows that status; `/metrics` renders [`XdsStats`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use mesh_core::{Endpoint, MeshConfig};
use parking_lot::RwLock;
use serde::Serialize;
use tokio::sync::watch;

/// A consistent view of everything the xDS server serves.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Increases by one on every change of anything below; xDS resource
    /// versions derive from it.
    pub version: u64,
    /// The version number of the applied config (its row in the history).
    pub config_version: u64,
    /// The applied config (intentions included).
    pub config: Arc<MeshConfig>,
    /// Endpoints found outside the config, per service: registered through
    /// the API (live, not expired) and resolved by DNS for services with `dns:`.
    pub discovered: BTreeMap<String, Vec<Endpoint>>,
}

impl Snapshot {
    /// All endpoints of `service`: its static config endpoints, then the
    /// discovered ones (a discovered endpoint with the address of a static one
    /// replaces it).
    pub fn endpoints(&self, service: &str) -> Vec<Endpoint> {
        let mut out: Vec<Endpoint> = self
            .config
            .services
            .get(service)
            .map(|s| s.endpoints.clone())
            .unwrap_or_default();
        if let Some(found) = self.discovered.get(service) {
            for ep in found {
                match out.iter_mut().find(|e| e.address == ep.address) {
                    Some(existing) => *existing = ep.clone(),
                    None => out.push(ep.clone()),
                }
            }
        }
        out
    }
}

/// The sending side: the store/API publishes here.
pub type SnapshotTx = watch::Sender<Arc<Snapshot>>;
/// The receiving side: the xDS server (and the dashboard) read here.
pub type SnapshotRx = watch::Receiver<Arc<Snapshot>>;

/// A fresh snapshot channel holding `initial`.
pub fn snapshot_channel(initial: Snapshot) -> (SnapshotTx, SnapshotRx) {
    watch::channel(Arc::new(initial))
}

/// A NACK: a client refused a version of a resource type.
#[derive(Debug, Clone, Serialize)]
pub struct Nack {
    /// The resource type URL.
    pub type_url: String,
    /// The version the client refused.
    pub version: String,
    /// The client's `error_detail` message.
    pub message: String,
    /// When it arrived.
    pub at: SystemTime,
}

/// What one connected xDS client (one ADS stream) has done.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    /// The node id from the client's first request.
    pub node_id: String,
    /// The node's cluster (Envoy), if given.
    pub cluster: String,
    /// The client's user agent (`envoy`, `grpc-python`, ...), if given.
    pub user_agent: String,
    /// When the stream opened.
    pub connected_at: SystemTime,
    /// Per type URL: the last version the node ACKed.
    pub acked: BTreeMap<String, String>,
    /// The last NACK, if any (the node keeps its last good version).
    pub last_nack: Option<Nack>,
}

/// Live status of the xDS server, shared with the API.
#[derive(Debug, Default)]
pub struct XdsStatus {
    nodes: RwLock<BTreeMap<u64, NodeStatus>>,
    /// Counters for `/metrics`.
    pub stats: XdsStats,
}

impl XdsStatus {
    /// Registers stream `stream_id` as connected.
    pub fn connect(&self, stream_id: u64, status: NodeStatus) {
        self.nodes.write().insert(stream_id, status);
        self.stats.connected.fetch_add(1, Ordering::Relaxed);
    }

    /// Forgets stream `stream_id`.
    pub fn disconnect(&self, stream_id: u64) {
        if self.nodes.write().remove(&stream_id).is_some() {
            self.stats.connected.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Changes what is known of stream `stream_id`.
    pub fn update(&self, stream_id: u64, f: impl FnOnce(&mut NodeStatus)) {
        if let Some(status) = self.nodes.write().get_mut(&stream_id) {
            f(status);
        }
    }

    /// Every connected node, by stream.
    pub fn nodes(&self) -> Vec<NodeStatus> {
        self.nodes.read().values().cloned().collect()
    }
}

/// Counters of the xDS server, rendered at `/metrics`.
#[derive(Debug, Default)]
pub struct XdsStats {
    /// ADS streams open now.
    pub connected: AtomicU64,
    /// Responses sent (pushes and first answers).
    pub pushes: AtomicU64,
    /// NACKs received.
    pub nacks: AtomicU64,
    /// ACKs received.
    pub acks: AtomicU64,
    /// Sum of push latencies (snapshot published -> response sent), microseconds.
    pub push_latency_us_sum: AtomicU64,
    /// Number of latencies in the sum.
    pub push_latency_count: AtomicU64,
}

impl XdsStats {
    /// Records one push that took `latency` from the snapshot change.
    pub fn record_push(&self, latency: Duration) {
        self.pushes.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.push_latency_us_sum.fetch_add(us, Ordering::Relaxed);
        self.push_latency_count.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::config::ServiceConfig;

    #[test]
    fn endpoints_merge_config_and_discovered() {
        let a: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: std::net::SocketAddr = "127.0.0.1:2".parse().unwrap();
        let mut config = MeshConfig::default();
        config.services.insert(
            "news".into(),
            ServiceConfig {
                endpoints: vec![Endpoint::new(a)],
                ..Default::default()
            },
        );
        let snap = Snapshot {
            config: Arc::new(config),
            discovered: BTreeMap::from([(
                "news".to_string(),
                vec![Endpoint::new(a).with_weight(5), Endpoint::new(b)],
            )]),
            ..Default::default()
        };
        let eps = snap.endpoints("news");
        assert_eq!(eps.len(), 2);
        assert_eq!(
            eps[0].weight, 5,
            "discovered replaces static of same address"
        );
        assert!(snap.endpoints("other").is_empty());
    }

    #[test]
    fn status_tracks_streams() {
        let status = XdsStatus::default();
        let node = NodeStatus {
            node_id: "envoy-1".into(),
            cluster: "edge".into(),
            user_agent: "envoy".into(),
            connected_at: SystemTime::now(),
            acked: BTreeMap::new(),
            last_nack: None,
        };
        status.connect(7, node);
        status.update(7, |n| {
            n.acked.insert("cds".into(), "3".into());
        });
        assert_eq!(status.nodes()[0].acked["cds"], "3");
        assert_eq!(status.stats.connected.load(Ordering::Relaxed), 1);
        status.disconnect(7);
        status.disconnect(7);
        assert_eq!(status.stats.connected.load(Ordering::Relaxed), 0);
        assert!(status.nodes().is_empty());
    }
}
