//! Failures from grpcio servers: statuses in trailers (trailers-only, and
//! after a reply message) counted by outlier detection, and a server killed
//! while calls are in flight.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use mesh_tests::grpcio::{self, GreeterServer};
use mesh_tonic::MeshChannel;
use tonic::Code;
use tower::ServiceExt;

use crate::common::{endpoints, mesh, say_hello};

/// The raw frames of one SayHello through `channel`: (data frames, the
/// trailers' grpc-status, the head's grpc-status).
async fn raw_call(channel: &MeshChannel) -> (usize, Option<String>, Option<String>) {
    // An empty HelloRequest, length-prefixed.
    let request = http::Request::post("http://greeter/helloworld.Greeter/SayHello")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(Full::new(Bytes::from_static(&[
            0, 0, 0, 0, 0,
        ]))))
        .unwrap();
    let response = channel.clone().oneshot(request).await.unwrap();
    let head = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_string());
    let mut body = response.into_body();
    let (mut data, mut trailer) = (0, None);
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        if frame.is_data() {
            data += 1;
        } else if let Some(t) = frame.trailers_ref() {
            trailer = t
                .get("grpc-status")
                .map(|v| v.to_str().unwrap().to_string());
        }
    }
    (data, trailer, head)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_failures_in_trailers_eject_the_endpoint() {
    if !grpcio::available() {
        return;
    }
    for (mode, detail) in [
        ("trailers-only", "injected"),
        ("after-message", "injected after message"),
    ] {
        let bad = GreeterServer::start_with("bad", &["--fail-rate", "1", "--fail-mode", mode]);
        let good = GreeterServer::start("good");
        let mesh = mesh(&format!(
            "services:
  probe:
    protocol: grpc
    endpoints: {}
  greeter:
    protocol: grpc
    load_balancer: round_robin
    outlier_detection:
      consecutive_failures: 3
      base_ejection: 60s
      max_ejected_percent: 50
    endpoints: {}
",
            endpoints(&[(bad.addr(), 1)]),
            endpoints(&[(bad.addr(), 1), (good.addr(), 1)])
        ));

        // What the server puts on the wire in this mode.
        let probe = MeshChannel::new(&mesh, "probe");
        let (data, trailer, head) = raw_call(&probe).await;
        match mode {
            "trailers-only" => assert_eq!((data, head.as_deref()), (0, Some("14"))),
            _ => assert_eq!(
                (data, trailer.as_deref(), head),
                (1, Some("14"), None),
                "after-message: a reply, then UNAVAILABLE in the trailers"
            ),
        }

        let channel = MeshChannel::new(&mesh, "greeter");
        let mut failed = 0;
        for i in 0..30 {
            match say_hello(&channel, None).await {
                Ok((name, _)) => assert_eq!(name, "good"),
                Err(status) => {
                    assert_eq!(status.code(), Code::Unavailable, "{mode}: {status:?}");
                    assert_eq!(status.message(), detail);
                    failed += 1;
                    assert!(i < 10, "{mode}: call {i} still reached the bad server");
                }
            }
        }
        // Three failures in a row eject it: counted from the trailers in
        // both modes.
        assert_eq!(failed, 3, "{mode}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpcio_server_killed_mid_call_fails_fast_and_the_channel_recovers() {
    if !grpcio::available() {
        return;
    }
    let mut victim = GreeterServer::start_with("victim", &["--delay", "500"]);
    let survivor = GreeterServer::start_with("survivor", &["--delay", "50"]);
    let mesh = mesh(&format!(
        "services:
  greeter:
    protocol: grpc
    load_balancer: round_robin
    retry:
      attempts: 3
      on: [connect-failure, reset, unavailable]
      backoff: {{ base: 1ms, max: 5ms }}
      budget: {{ ratio: 1.0, min_per_second: 1000 }}
    outlier_detection:
      consecutive_failures: 2
      max_ejected_percent: 50
    endpoints: {}
",
        endpoints(&[(victim.addr(), 1), (survivor.addr(), 1)])
    ));
    let channel = MeshChannel::new(&mesh, "greeter");
    // Warm both connections.
    for _ in 0..2 {
        say_hello(&channel, None).await.unwrap();
    }
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let channel = channel.clone();
            tokio::spawn(async move {
                tokio::time::timeout(Duration::from_secs(10), say_hello(&channel, None)).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    victim.kill();
    let (mut ok, mut unavailable) = (0, 0);
    for call in calls {
        match call.await.unwrap() {
            Err(_) => panic!("a call hung after its server was killed"),
            Ok(Ok((name, _))) => {
                assert_eq!(name, "survivor");
                ok += 1;
            }
            Ok(Err(status)) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                unavailable += 1;
            }
        }
    }
    // Round robin sent half of them to the victim: those fail UNAVAILABLE
    // (a POST reset after it was sent is not retried by default).
    assert!(unavailable >= 1, "ok {ok}, unavailable {unavailable}");
    assert!(ok >= 1, "ok {ok}, unavailable {unavailable}");

    // The channel recovers: every later call succeeds on the survivor
    // (a refused connection is retried elsewhere, then the victim is
    // ejected).
    for _ in 0..20 {
        let (name, _) = say_hello(&channel, Some(Duration::from_secs(5)))
            .await
            .unwrap();
        assert_eq!(name, "survivor");
    }
}
