//! The call's deadline as a grpcio server sees it.

use std::time::Duration;

use mesh_tests::grpcio::{self, GreeterServer};
use tonic::Code;

use crate::common::{endpoints, mesh, say_hello};

fn remaining_ms(reply: &str) -> u64 {
    reply
        .split("remaining=")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no remaining=<ms> in {reply:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_sees_at_most_our_deadline() {
    if !grpcio::available() {
        return;
    }
    let server = GreeterServer::start_with("d", &["--report-deadline"]);
    let slow = GreeterServer::start_with("s", &["--delay", "400"]);
    let mesh = mesh(&format!(
        "services:
  greeter:
    protocol: grpc
    endpoints: {}
  slow:
    protocol: grpc
    endpoints: {}
  routed:
    protocol: grpc
    timeout: 300ms
    endpoints: {}
",
        endpoints(&[(server.addr(), 1)]),
        endpoints(&[(slow.addr(), 1)]),
        endpoints(&[(server.addr(), 1)]),
    ));
    let channel = mesh_tonic::MeshChannel::new(&mesh, "greeter");
    for timeout_ms in [800u64, 2000] {
        let (reply, _) = say_hello(&channel, Some(Duration::from_millis(timeout_ms)))
            .await
            .unwrap();
        let left = remaining_ms(&reply);
        // Propagated as grpc-timeout: the server's time left is ours minus
        // the time on the way, never more.
        assert!(
            left <= timeout_ms && left + 500 >= timeout_ms,
            "timeout {timeout_ms} ms, server saw {left} ms"
        );
    }

    // The service's shorter timeout caps the propagated deadline.
    let routed = mesh_tonic::MeshChannel::new(&mesh, "routed");
    let (reply, _) = say_hello(&routed, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    let left = remaining_ms(&reply);
    assert!(left <= 300, "server saw {left} ms of a 300ms timeout");

    // A server slower than the deadline: DEADLINE_EXCEEDED.
    let slow = mesh_tonic::MeshChannel::new(&mesh, "slow");
    let status = say_hello(&slow, Some(Duration::from_millis(100)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
}
