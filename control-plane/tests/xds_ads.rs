//! The ADS protocol against an in-process tonic client: subscribe, ACK,
//! NACK, push on change (only changed types), garbage input, reconnect.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod xds_support;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use mesh_control_plane::xds::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE};
use mesh_core::Endpoint;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use xds_support::Xds;

const YAML: &str = r#"
services:
  news:
    protocol: grpc
    endpoints: [ { address: "127.0.0.1:9001", labels: { version: v1 } } ]
    subsets: { v1: { version: v1 } }
"#;

struct Client {
    tx: mpsc::Sender<DiscoveryRequest>,
    rx: Streaming<DiscoveryResponse>,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> Client {
        let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let (tx, rx) = mpsc::channel(16);
        let rx = client
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        Client { tx, rx }
    }

    async fn send(&self, type_url: &str, names: &[&str], version: &str, nonce: &str) {
        self.send_req(DiscoveryRequest {
            node: Some(Node {
                id: "test-node".into(),
                user_agent_name: "mesh-test".into(),
                ..Default::default()
            }),
            type_url: type_url.into(),
            resource_names: names.iter().map(|s| s.to_string()).collect(),
            version_info: version.into(),
            response_nonce: nonce.into(),
            ..Default::default()
        })
        .await;
    }

    async fn send_req(&self, req: DiscoveryRequest) {
        self.tx.send(req).await.unwrap();
    }

    async fn recv(&mut self) -> DiscoveryResponse {
        tokio::time::timeout(Duration::from_secs(5), self.rx.message())
            .await
            .expect("a response within 5s")
            .unwrap()
            .expect("stream open")
    }

    /// Nothing arrives within `d`.
    async fn silent(&mut self, d: Duration) -> bool {
        tokio::time::timeout(d, self.rx.message()).await.is_err()
    }

    /// Subscribes to `type_url` and ACKs the answer; returns it.
    async fn subscribe(&mut self, type_url: &str, names: &[&str]) -> DiscoveryResponse {
        self.send(type_url, names, "", "").await;
        let r = self.recv().await;
        assert_eq!(r.type_url, type_url);
        self.send(type_url, names, &r.version_info, &r.nonce).await;
        r
    }
}

#[tokio::test]
async fn subscribe_ack_nack_push_and_garbage() {
    let mut xds = Xds::start(YAML).await;
    let mut c = Client::connect(xds.addr).await;

    // LDS by name: the api listener.
    let lds = c.subscribe(LISTENER_TYPE, &["news"]).await;
    assert_eq!(lds.version_info, "1");
    assert_eq!(lds.resources.len(), 1);
    let l = Listener::decode(lds.resources[0].value.as_slice()).unwrap();
    assert_eq!(l.name, "news");
    assert!(l.api_listener.is_some());
    let rds = c.subscribe(ROUTE_TYPE, &["news"]).await;
    assert_eq!(rds.resources.len(), 1);
    // CDS wildcard: the service and its subset.
    let cds = c.subscribe(CLUSTER_TYPE, &[]).await;
    let names: Vec<String> = cds
        .resources
        .iter()
        .map(|a| Cluster::decode(a.value.as_slice()).unwrap().name)
        .collect();
    assert_eq!(names, ["news", "news/v1"]);
    let eds = c.subscribe(ENDPOINT_TYPE, &["news", "news/v1"]).await;
    assert_eq!(eds.resources.len(), 2);

    // ACKs are recorded per type.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let node = xds.status.nodes().pop().unwrap();
    assert_eq!(node.node_id, "test-node");
    assert_eq!(node.acked.get(LISTENER_TYPE).map(String::as_str), Some("1"));
    assert_eq!(node.acked.get(ENDPOINT_TYPE).map(String::as_str), Some("1"));
    assert!(node.last_nack.is_none());

    // Garbage: unknown type, stale nonce, unknown names -> no crash.
    c.send("type.googleapis.com/no.Such", &["x"], "", "").await;
    c.send(CLUSTER_TYPE, &[], "1", "not-a-nonce").await;
    assert!(
        c.silent(Duration::from_millis(200)).await,
        "garbage got an answer"
    );
    c.send(ROUTE_TYPE, &["news", "nope"], &rds.version_info, &rds.nonce)
        .await;
    let r = c.recv().await;
    assert_eq!(r.type_url, ROUTE_TYPE);
    assert_eq!(r.resources.len(), 1, "unknown name simply absent");
    c.send(ROUTE_TYPE, &["news", "nope"], &r.version_info, &r.nonce)
        .await;

    // A snapshot changing only endpoints pushes only EDS.
    let pushes_before = xds.status.stats.push_latency_count.load(Ordering::Relaxed);
    let extra = BTreeMap::from([(
        "news".to_string(),
        vec![Endpoint::new("127.0.0.1:9002".parse().unwrap()).with_label("version", "v1")],
    )]);
    xds.publish(YAML, extra);
    let push = c.recv().await;
    assert_eq!(push.type_url, ENDPOINT_TYPE);
    assert_eq!(push.version_info, "2");
    let cla = ClusterLoadAssignment::decode(push.resources[0].value.as_slice()).unwrap();
    assert_eq!(cla.endpoints.len(), 2);
    assert!(
        c.silent(Duration::from_millis(300)).await,
        "unchanged types re-sent"
    );
    assert_eq!(
        xds.status.stats.push_latency_count.load(Ordering::Relaxed),
        pushes_before + 1
    );

    // NACK: recorded, nothing re-sent, the last good version stays ACKed.
    c.send_req(DiscoveryRequest {
        type_url: ENDPOINT_TYPE.into(),
        resource_names: vec!["news".into(), "news/v1".into()],
        version_info: "1".into(),
        response_nonce: push.nonce.clone(),
        error_detail: Some(RpcStatus {
            code: 3,
            message: "endpoint rejected".into(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    assert!(c.silent(Duration::from_millis(200)).await);
    let node = xds.status.nodes().pop().unwrap();
    let nack = node.last_nack.expect("NACK recorded");
    assert_eq!(nack.type_url, ENDPOINT_TYPE);
    assert_eq!(nack.version, "2");
    assert_eq!(nack.message, "endpoint rejected");
    assert_eq!(node.acked.get(ENDPOINT_TYPE).map(String::as_str), Some("1"));
    assert_eq!(xds.status.stats.nacks.load(Ordering::Relaxed), 1);

    // The server is still fine: a new subscription works.
    c.send(
        LISTENER_TYPE,
        &[
            "news",
            "grpc/server?xds.resource.listening_address=127.0.0.1:9001",
        ],
        &lds.version_info,
        &lds.nonce,
    )
    .await;
    let r = c.recv().await;
    assert_eq!(r.resources.len(), 2);
    drop(c);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(xds.status.nodes().is_empty(), "disconnect recorded");
    xds.shutdown().await;
}

#[tokio::test]
async fn delta_is_unimplemented() {
    let xds = Xds::start(YAML).await;
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", xds.addr))
        .await
        .unwrap();
    let req = tokio_stream::iter(vec![DeltaDiscoveryRequest::default()]);
    let err = client.delta_aggregated_resources(req).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    xds.shutdown().await;
}

/// Restart of the control plane (client half): the server goes away, a new
/// one comes up on the same address, the client reconnects and resubscribes
/// and gets the (new) state.
#[tokio::test]
async fn clients_reconnect_and_resubscribe_after_restart() {
    let xds = Xds::start(YAML).await;
    let addr = xds.addr;
    let mut c = Client::connect(addr).await;
    let first = c.subscribe(CLUSTER_TYPE, &[]).await;
    assert_eq!(first.resources.len(), 2);
    xds.shutdown().await;
    // The stream ends when the server stops.
    let ended = tokio::time::timeout(Duration::from_secs(5), c.rx.message()).await;
    assert!(matches!(ended, Ok(Ok(None)) | Ok(Err(_))), "{ended:?}");

    let yaml2 = format!("{YAML}  other:\n    endpoints: [ {{ address: \"127.0.0.1:9003\" }} ]\n");
    let xds = Xds::start_on(addr, &yaml2, BTreeMap::new()).await;
    let mut c = Client::connect(addr).await;
    // A reconnecting client sends what it had (version and old nonce).
    c.send(CLUSTER_TYPE, &[], &first.version_info, &first.nonce)
        .await;
    let r = c.recv().await;
    assert_eq!(r.resources.len(), 3, "resubscribed and got the new state");
    assert_eq!(xds.status.nodes().len(), 1);
    xds.shutdown().await;
}
