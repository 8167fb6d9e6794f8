//! One ADS stream's state machine (state of the world), free of I/O so it
//! can be driven by tests directly: requests and snapshot publications in,
//! responses out.
//!
//! Per resource type the stream keeps the subscription (wildcard and/or
//! names) and what it last sent (version, nonce, a hash of the content).
//! See the [module docs of `xds`](super) for the protocol rules applied.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::time::SystemTime;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;

use super::resources::{Encoded, Flavor, NodeKind, Resources};
use super::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE};
use crate::state::{Nack, NodeStatus, XdsStatus};

/// In the order pushes go out (Envoy's: clusters and their endpoints before
/// the listeners and routes that name them).
const TYPES: [&str; 4] = [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE];

#[derive(Debug, Default)]
struct TypeState {
    wildcard: bool,
    names: BTreeSet<String>,
    sent: Option<Sent>,
}

#[derive(Debug)]
struct Sent {
    version: String,
    nonce: String,
    hash: u64,
}

/// What the stream knows of its node and subscriptions.
#[derive(Debug)]
pub struct AdsStream {
    id: u64,
    node: Option<(String, String)>,
    envoy: bool,
    types: HashMap<&'static str, TypeState>,
    nonces: u64,
}

impl AdsStream {
    /// A fresh stream with id `id` (its key in [`XdsStatus`]).
    pub fn new(id: u64) -> Self {
        Self {
            id,
            node: None,
            envoy: false,
            types: HashMap::new(),
            nonces: 0,
        }
    }

    /// Handles one request; returns the response to send, if any. Never
    /// fails: unknown types, stale or garbage nonces are logged and ignored.
    pub fn on_request(
        &mut self,
        req: DiscoveryRequest,
        res: &Resources,
        status: &XdsStatus,
    ) -> Option<DiscoveryResponse> {
        if self.node.is_none() {
            let node = req.node.clone().unwrap_or_default();
            let user_agent = format!("{} {}", node.user_agent_name, user_agent_version(&node))
                .trim()
                .to_string();
            status.connect(
                self.id,
                NodeStatus {
                    node_id: node.id.clone(),
                    cluster: node.cluster.clone(),
                    user_agent,
                    connected_at: SystemTime::now(),
                    acked: Default::default(),
                    last_nack: None,
                },
            );
            self.envoy = node.user_agent_name == "envoy";
            self.node = Some((node.id, node.cluster));
        }
        let Some(type_url) = TYPES.iter().copied().find(|t| *t == req.type_url) else {
            tracing::warn!(stream = self.id, type_url = %req.type_url, "xDS request for an unknown type ignored");
            return None;
        };
        let st = self.types.entry(type_url).or_default();
        // A nonce on a type never answered on this stream (a client carrying
        // one over from a previous connection) counts as a first request.
        if !req.response_nonce.is_empty() && st.sent.is_some() {
            let current = st.sent.as_ref().map(|s| s.nonce.as_str());
            if current != Some(req.response_nonce.as_str()) {
                tracing::debug!(stream = self.id, type_url, nonce = %req.response_nonce, "stale or unknown nonce ignored");
                return None;
            }
            if let Some(err) = &req.error_detail {
                tracing::warn!(stream = self.id, node = ?self.node, type_url, version = %req.version_info,
                    error = %err.message, "xDS NACK: the node keeps its last good version");
                status
                    .stats
                    .nacks
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let nack = Nack {
                    type_url: type_url.to_string(),
                    version: st
                        .sent
                        .as_ref()
                        .map(|s| s.version.clone())
                        .unwrap_or_default(),
                    message: err.message.clone(),
                    at: SystemTime::now(),
                };
                status.update(self.id, |n| n.last_nack = Some(nack));
                return None;
            }
            status
                .stats
                .acks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let version = req.version_info.clone();
            status.update(self.id, |n| {
                n.acked.insert(type_url.to_string(), version);
            });
            if !set_subscription(st, type_url, &req.resource_names) {
                return None;
            }
        } else {
            set_subscription(st, type_url, &req.resource_names);
        }
        self.respond(type_url, res, true)
    }

    /// A new snapshot was published: the responses for every subscribed type
    /// whose content changed.
    pub fn on_publish(&mut self, res: &Resources) -> Vec<DiscoveryResponse> {
        let subscribed: Vec<&'static str> = TYPES
            .iter()
            .copied()
            .filter(|t| self.types.get(t).is_some_and(|s| s.sent.is_some()))
            .collect();
        subscribed
            .into_iter()
            .filter_map(|t| self.respond(t, res, false))
            .collect()
    }

    /// Builds the response for `type_url`; when not `force`d, only if its
    /// content changed since the last one sent.
    fn respond(
        &mut self,
        type_url: &'static str,
        res: &Resources,
        force: bool,
    ) -> Option<DiscoveryResponse> {
        let kind = match &self.node {
            Some((id, cluster)) => NodeKind::classify(id, cluster, &res.snapshot),
            None => NodeKind::Proxyless,
        };
        let flavor = if self.envoy || matches!(kind, NodeKind::Gateway(_)) {
            Flavor::Envoy
        } else {
            Flavor::Grpc
        };
        let st = self.types.get(type_url)?;
        let resources = collect(type_url, st, &kind, flavor, res);
        let mut h = DefaultHasher::new();
        for e in &resources {
            e.name.hash(&mut h);
            e.any.value.hash(&mut h);
        }
        let hash = h.finish();
        let unchanged = st.sent.as_ref().filter(|s| s.hash == hash);
        if unchanged.is_some() && !force {
            return None;
        }
        let version = match unchanged {
            Some(s) => s.version.clone(),
            None => res.version.to_string(),
        };
        self.nonces += 1;
        let nonce = self.nonces.to_string();
        if let Some(st) = self.types.get_mut(type_url) {
            st.sent = Some(Sent {
                version: version.clone(),
                nonce: nonce.clone(),
                hash,
            });
        }
        Some(DiscoveryResponse {
            version_info: version,
            resources: resources.into_iter().map(|e| e.any).collect::<Vec<Any>>(),
            type_url: type_url.to_string(),
            nonce,
            ..Default::default()
        })
    }
}

fn user_agent_version(node: &envoy_types::pb::envoy::config::core::v3::Node) -> String {
    use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
    match &node.user_agent_version_type {
        Some(UserAgentVersionType::UserAgentVersion(v)) => v.clone(),
        _ => String::new(),
    }
}

/// Updates the subscription from a request's names; true when it changed.
/// LDS and CDS are wildcard when first asked with no names (Envoy) or with
/// `*`; RDS and EDS are always by name.
fn set_subscription(st: &mut TypeState, type_url: &str, names: &[String]) -> bool {
    let wildcard_type = type_url == LISTENER_TYPE || type_url == CLUSTER_TYPE;
    let first = st.sent.is_none();
    let wildcard = wildcard_type
        && (names.iter().any(|n| n == "*") || (names.is_empty() && (first || st.wildcard)));
    let set: BTreeSet<String> = names.iter().filter(|n| *n != "*").cloned().collect();
    let changed = wildcard != st.wildcard || set != st.names;
    st.wildcard = wildcard;
    st.names = set;
    changed
}

fn collect(
    type_url: &str,
    st: &TypeState,
    kind: &NodeKind,
    flavor: Flavor,
    res: &Resources,
) -> Vec<Encoded> {
    let clusters = match flavor {
        Flavor::Envoy => &res.envoy_clusters,
        Flavor::Grpc => &res.clusters,
    };
    let mut out: Vec<Encoded> = Vec::new();
    match type_url {
        LISTENER_TYPE => {
            if st.wildcard
                && let NodeKind::Gateway(g) = kind
            {
                out.extend(res.gateway_listeners.get(g).cloned());
            }
            for n in &st.names {
                if !out.iter().any(|e| &e.name == n) {
                    out.extend(res.listener(n));
                }
            }
        }
        ROUTE_TYPE => out.extend(st.names.iter().filter_map(|n| res.routes.get(n).cloned())),
        CLUSTER_TYPE => {
            if st.wildcard {
                out.extend(clusters.values().cloned());
            } else {
                out.extend(st.names.iter().filter_map(|n| clusters.get(n).cloned()));
            }
        }
        ENDPOINT_TYPE => out.extend(
            st.names
                .iter()
                .filter_map(|n| res.endpoints.get(n).cloned()),
        ),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use envoy_types::pb::envoy::config::core::v3::Node;
    use mesh_core::config::{Format, parse_str};

    use super::*;
    use crate::state::Snapshot;

    fn resources(yaml: &str, version: u64) -> Resources {
        Resources::build(Arc::new(Snapshot {
            version,
            config: Arc::new(parse_str(yaml, Format::Yaml, "t.yaml").unwrap()),
            ..Default::default()
        }))
    }

    const YAML: &str = "services:\n  web:\n    endpoints: [ { address: 127.0.0.1:1 } ]\ngateways:\n  edge:\n    listen: 127.0.0.1:10000\n    routes: [ { match: { path_prefix: / }, service: web } ]\n";

    fn req(id: &str, agent: &str, type_url: &str, names: &[&str]) -> DiscoveryRequest {
        DiscoveryRequest {
            node: Some(Node {
                id: id.into(),
                user_agent_name: agent.into(),
                ..Default::default()
            }),
            type_url: type_url.into(),
            resource_names: names.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn gateway_node_gets_its_listener_by_wildcard_others_nothing() {
        let res = resources(YAML, 1);
        let status = XdsStatus::default();
        let mut envoy = AdsStream::new(1);
        let r = envoy
            .on_request(req("edge", "envoy", LISTENER_TYPE, &[]), &res, &status)
            .unwrap();
        assert_eq!(r.resources.len(), 1);
        let mut other = AdsStream::new(2);
        let r = other
            .on_request(req("x", "grpc", LISTENER_TYPE, &[]), &res, &status)
            .unwrap();
        assert!(r.resources.is_empty());
        assert_eq!(status.nodes().len(), 2);
    }

    #[test]
    fn envoy_nodes_get_envoy_clusters() {
        let res = resources(YAML, 1);
        let status = XdsStatus::default();
        let mut envoy = AdsStream::new(1);
        let a = envoy
            .on_request(req("e", "envoy", CLUSTER_TYPE, &[]), &res, &status)
            .unwrap();
        let mut grpc = AdsStream::new(2);
        let b = grpc
            .on_request(req("g", "gRPC Python", CLUSTER_TYPE, &[]), &res, &status)
            .unwrap();
        assert_eq!(a.resources[0], res.envoy_clusters["web"].any);
        assert_eq!(b.resources[0], res.clusters["web"].any);
        assert_ne!(a.resources[0], b.resources[0]);
    }

    #[test]
    fn versions_stay_when_content_does_not_change() {
        let status = XdsStatus::default();
        let mut s = AdsStream::new(1);
        let r1 = resources(YAML, 1);
        let first = s
            .on_request(req("g", "grpc", CLUSTER_TYPE, &["web"]), &r1, &status)
            .unwrap();
        assert_eq!(first.version_info, "1");
        // Same content at snapshot 2: nothing pushed.
        assert!(s.on_publish(&resources(YAML, 2)).is_empty());
        // Changed content at snapshot 3: pushed with version 3, new nonce.
        let changed = YAML.replace("127.0.0.1:1", "127.0.0.1:2");
        let pushed = s.on_publish(&resources(&changed, 3));
        assert_eq!(pushed.len(), 0, "CDS content does not hold addresses");
        let mut e = AdsStream::new(2);
        let first = e
            .on_request(req("g", "grpc", ENDPOINT_TYPE, &["web"]), &r1, &status)
            .unwrap();
        let pushed = e.on_publish(&resources(&changed, 3));
        assert_eq!(pushed.len(), 1);
        assert_eq!(pushed[0].version_info, "3");
        assert_ne!(pushed[0].nonce, first.nonce);
    }
}
