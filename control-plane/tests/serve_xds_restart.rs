//! Issue 7 section 4, "restart the control plane: state is back; clients
//! reconnect": an ADS client (tonic, envoy-types) fetches the endpoints of a
//! service (LDS `news` -> CDS -> EDS), the control plane is stopped and
//! started again on the same data directory and ports, and the client,
//! dialling again, gets the same endpoints (config and registrations).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

mod serve_harness;

use std::collections::BTreeSet;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use prost::Message;
use serve_harness::{Cp, stderr};
use tokio_stream::wrappers::ReceiverStream;

const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const EDS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

fn request(type_url: &str, names: Vec<String>) -> DiscoveryRequest {
    DiscoveryRequest {
        node: Some(Node {
            id: "restart-test".into(),
            user_agent_name: "mesh-tests".into(),
            ..Default::default()
        }),
        type_url: type_url.into(),
        resource_names: names,
        ..Default::default()
    }
}

/// The endpoint addresses of the clusters of `news`, over one ADS stream:
/// the first EDS answer equal to `want`, or the last one seen when no
/// further answer comes for 5 s (pushes after a change are coalesced, so a
/// fresh change may arrive as a second answer).
async fn fetch_endpoints(grpc: &str, want: &BTreeSet<String>) -> BTreeSet<String> {
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{grpc}"))
        .await
        .expect("connect to the xDS port");
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tx.send(request(LDS, vec!["news".into()])).await.unwrap();
    tx.send(request(CDS, Vec::new())).await.unwrap();
    let mut responses = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .expect("ADS stream")
        .into_inner();
    let mut eds_names: Option<Vec<String>> = None;
    let mut saw_listener = false;
    let mut last = None;
    loop {
        let Ok(resp) = tokio::time::timeout(Duration::from_secs(5), responses.message()).await
        else {
            return last.expect("an EDS answer within 5 s");
        };
        let resp: DiscoveryResponse = resp.expect("stream ok").expect("stream open");
        match resp.type_url.as_str() {
            LDS => saw_listener = !resp.resources.is_empty(),
            CDS if eds_names.is_none() => {
                let names: Vec<String> = resp
                    .resources
                    .iter()
                    .filter_map(|any| Cluster::decode(any.value.as_slice()).ok())
                    .filter(|c| c.name.contains("news"))
                    .map(|c| match c.eds_cluster_config {
                        Some(eds) if !eds.service_name.is_empty() => eds.service_name,
                        _ => c.name,
                    })
                    .collect();
                assert!(!names.is_empty(), "a cluster for news");
                tx.send(request(EDS, names.clone())).await.unwrap();
                eds_names = Some(names);
            }
            EDS => {
                assert!(saw_listener, "the Listener `news` came first");
                let mut out = BTreeSet::new();
                for any in &resp.resources {
                    let cla = ClusterLoadAssignment::decode(any.value.as_slice()).unwrap();
                    for lb in cla.endpoints.iter().flat_map(|l| &l.lb_endpoints) {
                        if let Some(HostIdentifier::Endpoint(ep)) = &lb.host_identifier {
                            let sock = ep.address.as_ref().and_then(|a| match &a.address {
                                Some(envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(s)) => Some(s),
                                _ => None,
                            });
                            if let Some(s) = sock
                                && let Some(PortSpecifier::PortValue(p)) = s.port_specifier
                            {
                                out.insert(format!("{}:{p}", s.address));
                            }
                        }
                    }
                }
                if &out == want {
                    return out;
                }
                last = Some(out);
            }
            _ => {}
        }
    }
}

#[test]
fn restart_brings_state_back_and_clients_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mesh.yaml"),
        "services:\n  news:\n    protocol: grpc\n    endpoints: [{ address: 127.0.0.1:8081 }]\n",
    )
    .unwrap();
    let cp = Cp::start(dir.path(), &["--config", "mesh.yaml"]);
    let out = cp.run(&["register", "news", "127.0.0.1:9009", "--ttl", "1h"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let want: BTreeSet<String> = ["127.0.0.1:8081", "127.0.0.1:9009"]
        .map(String::from)
        .into();
    let fetch = |grpc: &str| {
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(20), fetch_endpoints(grpc, &want)).await
        })
        .expect("the xDS fetch finished within 20 s")
    };
    let before = fetch(&cp.grpc);
    assert_eq!(before, want);

    let (http, grpc) = (
        cp.url.trim_start_matches("http://").to_string(),
        cp.grpc.clone(),
    );
    assert!(cp.stop().success());
    let cp = Cp::start(dir.path(), &["--http-addr", &http, "--grpc-addr", &grpc]);
    assert_eq!(cp.grpc, grpc, "same port");
    let after = fetch(&cp.grpc);
    assert_eq!(after, want, "state is back after the restart");
}
