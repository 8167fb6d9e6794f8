//! The helloworld messages and a minimal client over any channel.

use std::time::Duration;

use http::uri::PathAndQuery;
use mesh_core::config::{Format, parse_str};
use mesh_tonic::MeshChannel;
use mesh_tower::ext::ServedBy;
use tonic::{Code, Status};

/// `helloworld.HelloRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `helloworld.HelloReply`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    #[prost(string, tag = "1")]
    pub message: String,
}

/// What one call got: the reply and who served it, or the status.
pub type Answer = Result<(String, Option<std::net::SocketAddr>), Status>;

/// Calls `helloworld.Greeter/SayHello` on `channel`, with a deadline of
/// `timeout` when given.
pub async fn say_hello(channel: &MeshChannel, timeout: Option<Duration>) -> Answer {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::new(Code::Unknown, e.to_string()))?;
    let mut request = tonic::Request::new(HelloRequest {
        name: "mesh".into(),
    });
    if let Some(t) = timeout {
        request.set_timeout(t);
    }
    let response: tonic::Response<HelloReply> = grpc
        .unary(
            request,
            PathAndQuery::from_static("/helloworld.Greeter/SayHello"),
            tonic_prost::ProstCodec::default(),
        )
        .await?;
    let by = response.extensions().get::<ServedBy>().map(|s| s.0);
    Ok((response.into_inner().message, by))
}

/// A mesh whose config is `yaml`.
pub fn mesh(yaml: &str) -> mesh_tower::Mesh {
    let config = parse_str(yaml, Format::Yaml, "test.yaml").unwrap();
    mesh_tower::Mesh::builder()
        .config(config)
        .wait_for_endpoints(Duration::from_millis(200))
        .build()
        .unwrap()
}

/// `[ { address: a, weight: w }, ... ]`.
pub fn endpoints(list: &[(std::net::SocketAddr, u32)]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|(a, w)| format!("{{ address: {a}, weight: {w} }}"))
        .collect();
    format!("[ {} ]", items.join(", "))
}
