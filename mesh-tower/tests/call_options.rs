//! `MeshClient::call_with`: a caller's deadline passed as a call option is
//! the call's own (the client's one call timer enforces it), unlike a
//! `Deadline` extension alone, which only bounds attempts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod client_common;

use std::time::Duration;

use client_common::{get, upstream_with_delay};
use mesh_core::config::{Format, parse_str};
use mesh_tower::MeshClient;
use mesh_tower::error::{ErrorKind, kind};
use mesh_tower::ext::Deadline;
use mesh_tower::{CallOptions, Mesh};
use tokio::time::Instant;
use tower::{Service, ServiceExt};

type Req = http::Request<http_body_util::Empty<bytes::Bytes>>;

/// The client made ready for a request of the tests' type.
async fn ready(client: &mut MeshClient) -> &mut MeshClient {
    ServiceExt::<Req>::ready(client).await.unwrap()
}

fn mesh(yaml: &str) -> Mesh {
    Mesh::builder()
        .config(parse_str(yaml, Format::Yaml, "test.yaml").unwrap())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_option_fails_the_call_in_time_and_an_extension_alone_does_not() {
    let slow = upstream_with_delay("slow", Duration::from_millis(400)).await;
    // No timeout anywhere in the config: only the caller's deadline.
    let mesh = mesh(&format!(
        "services:\n  slow:\n    endpoints: [ {{ address: {} }} ]\n",
        slow.addr
    ));
    let mut client = mesh.client("slow");

    times_out_early(&mut client, Duration::from_millis(50)).await;

    // The same deadline as an extension only bounds attempts (there is no
    // per-try timeout here): the call waits for the answer.
    let mut req = get("http://slow/");
    req.extensions_mut()
        .insert(Deadline(Instant::now() + Duration::from_millis(50)));
    let response = ready(&mut client).await.call(req).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_timeout_still_wins_when_earlier() {
    let slow = upstream_with_delay("slow", Duration::from_millis(400)).await;
    let mesh = mesh(&format!(
        "services:\n  slow:\n    timeout: 50ms\n    endpoints: [ {{ address: {} }} ]\n",
        slow.addr
    ));
    let mut client = mesh.client("slow");
    times_out_early(&mut client, Duration::from_secs(30)).await;
}

/// A call to the 400 ms upstream with a deadline `after` from now fails
/// with a timeout well before the upstream would answer.
async fn times_out_early(client: &mut MeshClient, after: Duration) {
    let start = Instant::now();
    let options = CallOptions::default().deadline(Some(start + after));
    let err = ready(client)
        .await
        .call_with(get("http://slow/"), options)
        .await
        .unwrap_err();
    assert_eq!(kind(&*err), ErrorKind::Timeout, "{err}");
    let took = start.elapsed();
    assert!(took < Duration::from_millis(350), "failed after {took:?}");
}
