//! `MeshChannel` under generated tonic clients, against real tonic servers:
//! balancing, retries on UNAVAILABLE, trailers-only failures, deadline
//! propagation, and mesh errors as `Status`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use common::helloworld::HelloRequest;
use common::helloworld::greeter_client::GreeterClient;
use common::{Behaviour, black_hole, endpoints, mesh, server};
use http_body_util::Full;
use mesh_core::outlier::Observation;
use mesh_tonic::{MeshChannel, MeshGrpcExt};
use mesh_tower::classify::{is_success, observation, response_outcome};
use mesh_tower::ext::{Attempts, ServedBy};
use tonic::Code;
use tower::ServiceExt;

/// A mesh with one `greeter` gRPC service over `addrs`, default policies.
fn greeter_mesh(addrs: &[std::net::SocketAddr]) -> mesh_tower::Mesh {
    mesh(&format!(
        "services:\n  greeter:\n    protocol: grpc\n    endpoints: {}\n",
        endpoints(addrs)
    ))
}

fn hello(name: &str) -> tonic::Request<HelloRequest> {
    tonic::Request::new(HelloRequest {
        name: name.to_string(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_client_balances_over_three_servers() {
    let servers = [
        server(Behaviour::Ok, 1).await,
        server(Behaviour::Ok, 2).await,
        server(Behaviour::Ok, 3).await,
    ];
    let addrs: Vec<_> = servers.iter().map(|s| s.addr).collect();
    let mesh = mesh(&format!(
        "services:\n  greeter:\n    protocol: grpc\n    load_balancer: round_robin\n    endpoints: {}\n",
        endpoints(&addrs)
    ));
    let mut client = GreeterClient::new(mesh.grpc_channel("greeter"));
    let mut served: HashMap<_, usize> = HashMap::new();
    for i in 0..30 {
        let response = client.say_hello(hello(&format!("n{i}"))).await.unwrap();
        let by = response.extensions().get::<ServedBy>().unwrap().0;
        assert!(
            response.get_ref().message.ends_with(&by.to_string()),
            "{} served by {by}",
            response.get_ref().message
        );
        *served.entry(by).or_default() += 1;
    }
    for s in &servers {
        assert_eq!(served.get(&s.addr), Some(&10), "{served:?}");
        assert_eq!(s.calls.load(Ordering::SeqCst), 10);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_30_percent_of_the_time_is_retried_to_99_percent() {
    let servers = [
        server(Behaviour::FailRate(0.3), 11).await,
        server(Behaviour::FailRate(0.3), 12).await,
        server(Behaviour::FailRate(0.3), 13).await,
    ];
    let addrs: Vec<_> = servers.iter().map(|s| s.addr).collect();
    let mesh = mesh(&format!(
        "services:
  greeter:
    protocol: grpc
    load_balancer: round_robin
    retry:
      attempts: 5
      on: [unavailable]
      backoff: {{ base: 1ms, max: 5ms }}
      budget: {{ ratio: 1.0, min_per_second: 1000 }}
    endpoints: {}
",
        endpoints(&addrs)
    ));
    let mut client = GreeterClient::new(MeshChannel::new(&mesh, "greeter"));
    let total = 300;
    let mut ok = 0;
    let mut retried = 0;
    for i in 0..total {
        match client.say_hello(hello(&format!("n{i}"))).await {
            Ok(response) => {
                ok += 1;
                if response.extensions().get::<Attempts>().unwrap().0 > 1 {
                    retried += 1;
                }
            }
            Err(status) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
        }
    }
    let failures: usize = servers
        .iter()
        .map(|s| s.failures.load(Ordering::SeqCst))
        .sum();
    // Without retries about 30% would fail.
    assert!(failures >= total / 5, "only {failures} injected failures");
    assert!(retried >= total / 5, "only {retried} calls retried");
    assert!(ok * 100 >= total * 99, "{ok}/{total} succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trailers_only_error_is_classified_as_failure() {
    let bad = server(Behaviour::Unavailable, 21).await;
    let good = server(Behaviour::Ok, 22).await;
    let mesh = mesh(&format!(
        "services:
  plain:
    protocol: grpc
    endpoints: {}
  greeter:
    protocol: grpc
    load_balancer: round_robin
    retry:
      attempts: 2
      on: [unavailable]
      backoff: {{ base: 1ms, max: 2ms }}
    endpoints: {}
",
        endpoints(&[bad.addr]),
        endpoints(&[bad.addr, good.addr])
    ));

    // On the wire: HTTP 200, grpc-status 14 in the headers, no message.
    let frame = Bytes::from_static(&[0, 0, 0, 0, 0]); // an empty HelloRequest
    let request = http::Request::post("http://plain/helloworld.Greeter/SayHello")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(frame))
        .unwrap();
    let response = mesh.client("plain").oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["grpc-status"], "14");
    let outcome = response_outcome(&response);
    assert!(!is_success(&outcome));
    assert_eq!(observation(&outcome), Observation::Failure);

    // Through a generated client: without retries the status comes back...
    let mut plain = GreeterClient::new(mesh.grpc_channel("plain"));
    let status = plain.say_hello(hello("x")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "injected");

    // ...and with `on: [unavailable]` every call the bad server fails is
    // retried on the good one.
    let mut client = GreeterClient::new(mesh.grpc_channel("greeter"));
    let before = bad.calls.load(Ordering::SeqCst);
    for i in 0..20 {
        let response = client.say_hello(hello(&format!("n{i}"))).await.unwrap();
        assert_eq!(
            response.extensions().get::<ServedBy>().unwrap().0,
            good.addr
        );
    }
    assert!(bad.calls.load(Ordering::SeqCst) - before >= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_name_the_service_as_their_authority() {
    // As gRPC clients send their target's authority: the endpoint's
    // address only picks the connection.
    let s = server(Behaviour::Ok, 41).await;
    let mesh = greeter_mesh(&[s.addr]);
    let mut client = GreeterClient::new(mesh.grpc_channel("greeter"));
    client.say_hello(hello("a")).await.unwrap();
    // A client given its own origin keeps it.
    let origin: http::Uri = format!("http://{}", s.addr).parse().unwrap();
    let mut own = GreeterClient::with_origin(mesh.grpc_channel("greeter"), origin);
    own.say_hello(hello("b")).await.unwrap();
    let seen = s.authorities.lock().unwrap().clone();
    assert_eq!(
        seen,
        [Some("greeter".to_string()), Some(s.addr.to_string())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_travels_as_grpc_timeout() {
    let s = server(Behaviour::Ok, 31).await;
    let mesh = greeter_mesh(&[s.addr]);
    let mut client = GreeterClient::new(mesh.grpc_channel("greeter"));
    let timeout = Duration::from_millis(1500);
    let mut request = hello("x");
    request.set_timeout(timeout);
    client.say_hello(request).await.unwrap();
    // No timeout: no header.
    client.say_hello(hello("y")).await.unwrap();
    let seen = s.timeouts.all();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let first = seen[0].expect("grpc-timeout reached the server");
    assert!(first <= timeout, "{first:?}");
    assert!(first > Duration::from_millis(500), "{first:?}");
    assert_eq!(seen[1], None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_timeout_shortens_the_propagated_deadline() {
    let s = server(Behaviour::Ok, 32).await;
    let mesh = mesh(&format!(
        "services:\n  greeter:\n    protocol: grpc\n    timeout: 300ms\n    endpoints: {}\n",
        endpoints(&[s.addr])
    ));
    let mut client = GreeterClient::new(mesh.grpc_channel("greeter"));
    let mut request = hello("x");
    request.set_timeout(Duration::from_secs(10));
    client.say_hello(request).await.unwrap();
    let seen = s.timeouts.all()[0].unwrap();
    assert!(seen <= Duration::from_millis(300), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_timeout_travels_as_grpc_timeout_without_a_caller_deadline() {
    let s = server(Behaviour::Ok, 33).await;
    let mesh = mesh(&format!(
        "services:\n  greeter:\n    protocol: grpc\n    timeout: 300ms\n    endpoints: {}\n",
        endpoints(&[s.addr])
    ));
    let mut client = GreeterClient::new(mesh.grpc_channel("greeter"));
    // The caller sets no timeout: the service's `timeout` is the deadline.
    client.say_hello(hello("x")).await.unwrap();
    client.say_hello(hello("y")).await.unwrap();
    let seen = s.timeouts.all();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for seen in seen {
        let seen = seen.expect("the service timeout reached the server as grpc-timeout");
        assert!(seen <= Duration::from_millis(300), "{seen:?}");
        assert!(seen > Duration::from_millis(100), "{seen:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passed_deadline_is_deadline_exceeded() {
    let (addr, hole) = black_hole().await;
    let mesh = greeter_mesh(&[addr]);
    let mut client = GreeterClient::new(mesh.grpc_channel("greeter"));
    let mut request = hello("x");
    request.set_timeout(Duration::from_millis(100));
    let status = client.say_hello(request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    hole.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_endpoints_and_circuit_open_are_unavailable() {
    let mesh = mesh("services:\n  ghost:\n    protocol: grpc\n");
    let mut client = GreeterClient::new(mesh.grpc_channel("ghost"));
    let status = client.say_hello(hello("x")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("ghost"), "{status:?}");

    let (addr, hole) = black_hole().await;
    let mesh = common::mesh(&format!(
        "services:
  greeter:
    protocol: grpc
    circuit_breaker: {{ max_requests: 1, max_pending: 1 }}
    endpoints: {}
",
        endpoints(&[addr])
    ));
    let channel = mesh.grpc_channel("greeter");
    let mut first = GreeterClient::new(channel.clone());
    let mut second = GreeterClient::new(channel);
    let mut held = hello("first");
    held.set_timeout(Duration::from_millis(500));
    let held = tokio::spawn(async move { first.say_hello(held).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let status = second.say_hello(hello("second")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("greeter"), "{status:?}");
    let held = held.await.unwrap().unwrap_err();
    assert_eq!(held.code(), Code::DeadlineExceeded, "{held:?}");
    hole.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_carries_its_own_time_left() {
    let bad = server(Behaviour::Unavailable, 41).await;
    let good = server(Behaviour::Ok, 42).await;
    let mesh = mesh(&format!(
        "services:
  greeter:
    protocol: grpc
    load_balancer: round_robin
    retry:
      attempts: 2
      per_try_timeout: 400ms
      on: [unavailable]
      backoff: {{ base: 1ms, max: 2ms }}
    endpoints: {}
",
        endpoints(&[bad.addr, good.addr])
    ));
    let mut client = GreeterClient::new(mesh.grpc_channel("greeter"));
    for i in 0..6 {
        let mut request = hello(&format!("n{i}"));
        request.set_timeout(Duration::from_secs(5));
        client.say_hello(request).await.unwrap();
    }
    let (on_bad, on_good) = (bad.timeouts.all(), good.timeouts.all());
    assert!(
        !on_bad.is_empty() && on_good.len() == 6,
        "{on_bad:?} {on_good:?}"
    );
    for seen in on_bad.iter().chain(&on_good) {
        let seen = seen.expect("every attempt carries grpc-timeout");
        assert!(seen <= Duration::from_millis(400), "{seen:?}");
        assert!(seen > Duration::from_millis(100), "{seen:?}");
    }
}

/// A caller's own extensions on a tonic request still reach the mesh (the
/// channel drops only tonic's method-name extension): a cell the balancer
/// fills with the endpoint it picked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_extensions_reach_the_mesh() {
    let server = server(Behaviour::Ok, 1).await;
    let mesh = greeter_mesh(&[server.addr]);
    let mut client = GreeterClient::new(mesh.grpc_channel("greeter"));
    let cell = mesh_tower::ext::AttemptEndpoint::new();
    let mut request = hello("x");
    request.extensions_mut().insert(cell.clone());
    client.say_hello(request).await.unwrap();
    assert_eq!(cell.get(), Some(server.addr));
}
