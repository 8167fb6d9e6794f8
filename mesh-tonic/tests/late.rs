//! Statuses that arrive in trailers after a message (late outcomes) and
//! gRFC A66 client metrics, against real HTTP/2 servers: a raw hyper h2
//! server that sends a reply and then fails the call in its trailers (what
//! tonic's unary servers never do, but other stacks and streaming calls
//! do), and tonic servers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::helloworld::greeter_client::GreeterClient;
use common::helloworld::{HelloReply, HelloRequest};
use common::{Behaviour, endpoints, server};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use mesh_core::config::{Format, parse_str};
use mesh_tonic::MeshChannel;
use mesh_tower::ext::ServedBy;
use mesh_tower::metrics::Metrics;
use mesh_tower::metrics::prometheus::{Exposition, pipeline};
use opentelemetry::metrics::MeterProvider;
use prost::Message;
use tonic::Code;
use tower::ServiceExt;

/// How the raw server ends each call.
#[derive(Clone, Copy)]
enum Ending {
    /// A reply, then `grpc-status` in the trailers.
    Trailers(u32),
    /// A reply, then nothing (the stream stays open).
    Hang,
}

/// A raw HTTP/2 gRPC server; runs until the test's runtime ends.
async fn raw_server(ending: Ending) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req: http::Request<_>| async move {
                    let reply = HelloReply {
                        message: format!("late from {addr}"),
                    }
                    .encode_to_vec();
                    let mut msg = vec![0u8];
                    msg.extend_from_slice(&(reply.len() as u32).to_be_bytes());
                    msg.extend_from_slice(&reply);
                    let (tx, rx) =
                        tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
                    tokio::spawn(async move {
                        let _ = tx.send(Ok(Frame::data(Bytes::from(msg)))).await;
                        match ending {
                            Ending::Trailers(code) => {
                                let mut trailers = http::HeaderMap::new();
                                trailers.insert("grpc-status", code.to_string().parse().unwrap());
                                trailers.insert("grpc-message", "late".parse().unwrap());
                                let _ = tx.send(Ok(Frame::trailers(trailers))).await;
                            }
                            Ending::Hang => {
                                tx.closed().await;
                            }
                        }
                    });
                    let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
                    Ok::<_, Infallible>(
                        http::Response::builder()
                            .header("content-type", "application/grpc")
                            .body(body)
                            .unwrap(),
                    )
                });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(conn), svc)
                        .await;
            });
        }
    });
    addr
}

/// A mesh over `yaml` recording into its own Prometheus exposition.
fn mesh_with_metrics(yaml: &str) -> (mesh_tower::Mesh, Exposition, Provider) {
    let (provider, exposition) = pipeline(Some("test")).unwrap();
    let metrics = Metrics::new(&provider.meter(mesh_tower::metrics::SCOPE));
    let config = parse_str(yaml, Format::Yaml, "test.yaml").unwrap();
    let mesh = mesh_tower::Mesh::builder()
        .config(config)
        .metrics(metrics)
        .wait_for_endpoints(Duration::from_millis(100))
        .build()
        .unwrap();
    (mesh, exposition, Provider(provider))
}

struct Provider(opentelemetry_sdk::metrics::SdkMeterProvider);

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.0.shutdown();
    }
}

/// Sum of the series `name` whose labels include all of `want`.
fn scrape(expo: &Exposition, name: &str, want: &[(&str, &str)]) -> f64 {
    let text = expo.render().unwrap();
    let mut sum = 0.0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (n, labels) = series.split_once('{').unwrap_or((series, ""));
        if n != name {
            continue;
        }
        let mut map = BTreeMap::new();
        for pair in labels
            .trim_end_matches('}')
            .split("\",")
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair.split_once("=\"").unwrap();
            map.insert(k, v.trim_end_matches('"'));
        }
        if want.iter().all(|(k, v)| map.get(k) == Some(v)) {
            sum += value.parse::<f64>().unwrap();
        }
    }
    sum
}

const ATTEMPTS: &str = "grpc_client_attempt_duration_seconds_count";
const CALLS: &str = "grpc_client_call_duration_seconds_count";
const METHOD: (&str, &str) = ("grpc_method", "helloworld.Greeter/SayHello");

fn hello() -> tonic::Request<HelloRequest> {
    tonic::Request::new(HelloRequest { name: "x".into() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_in_trailers_after_a_message_ejects_the_endpoint() {
    let bad = raw_server(Ending::Trailers(14)).await;
    let good = server(Behaviour::Ok, 41).await;
    let (mesh, expo, _p) = mesh_with_metrics(&format!(
        "services:
  greeter:
    protocol: grpc
    load_balancer: round_robin
    outlier_detection:
      consecutive_failures: 3
      base_ejection: 60s
      max_ejected_percent: 50
    endpoints: {}
",
        endpoints(&[bad, good.addr])
    ));
    let mut client = GreeterClient::new(MeshChannel::new(&mesh, "greeter"));
    let mut failed = 0;
    let mut ok_tail = 0;
    for i in 0..30 {
        match client.say_hello(hello()).await {
            Ok(r) => {
                assert_eq!(r.extensions().get::<ServedBy>().unwrap().0, good.addr);
                if i >= 10 {
                    ok_tail += 1;
                }
            }
            Err(status) => {
                // The reply came, then UNAVAILABLE in the trailers.
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert_eq!(status.message(), "late");
                failed += 1;
            }
        }
    }
    // Counted at the trailers: three in a row eject the endpoint (judged at
    // the head, all 15 of its calls would have been "successes").
    assert_eq!(failed, 3, "the bad endpoint should be ejected after 3");
    assert_eq!(ok_tail, 20);

    // A66: every attempt and call, by status and endpoint.
    let bad_ep = bad.to_string();
    let good_ep = good.addr.to_string();
    let unavailable = ("grpc_status", "UNAVAILABLE");
    let ok = ("grpc_status", "OK");
    let target = ("grpc_target", "greeter");
    assert_eq!(
        scrape(
            &expo,
            ATTEMPTS,
            &[METHOD, unavailable, target, ("mesh_endpoint", &bad_ep)]
        ),
        3.0
    );
    assert_eq!(
        scrape(&expo, ATTEMPTS, &[METHOD, ok, ("mesh_endpoint", &good_ep)]),
        27.0
    );
    assert_eq!(scrape(&expo, CALLS, &[METHOD, unavailable, target]), 3.0);
    assert_eq!(scrape(&expo, CALLS, &[METHOD, ok]), 27.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_and_calls_are_measured_apart_under_retries() {
    let flaky = server(Behaviour::FailRate(0.3), 51).await;
    let (mesh, expo, _p) = mesh_with_metrics(&format!(
        "services:
  greeter:
    protocol: grpc
    retry:
      attempts: 5
      on: [unavailable]
      backoff: {{ base: 1ms, max: 2ms }}
      budget: {{ ratio: 1.0, min_per_second: 1000 }}
    endpoints: {}
",
        endpoints(&[flaky.addr])
    ));
    let mut client = GreeterClient::new(MeshChannel::new(&mesh, "greeter"));
    let mut ok_calls = 0;
    for _ in 0..100 {
        if client.say_hello(hello()).await.is_ok() {
            ok_calls += 1;
        }
    }
    let failures = flaky.failures.load(std::sync::atomic::Ordering::SeqCst) as f64;
    let calls = flaky.calls.load(std::sync::atomic::Ordering::SeqCst) as f64;
    assert!(failures >= 10.0, "{failures} injected failures");
    // Each attempt once, with the status the server sent (trailers-only).
    assert_eq!(
        scrape(&expo, ATTEMPTS, &[METHOD, ("grpc_status", "UNAVAILABLE")]),
        failures
    );
    assert_eq!(scrape(&expo, ATTEMPTS, &[METHOD]), calls);
    // Each call once, with its final status.
    assert_eq!(scrape(&expo, CALLS, &[METHOD]), 100.0);
    assert_eq!(
        scrape(&expo, CALLS, &[METHOD, ("grpc_status", "OK")]),
        f64::from(ok_calls)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_dropped_before_its_end_is_cancelled_not_failed() {
    let hang = raw_server(Ending::Hang).await;
    let (mesh, expo, _p) = mesh_with_metrics(&format!(
        "services:
  greeter:
    protocol: grpc
    outlier_detection:
      consecutive_failures: 1
      max_ejected_percent: 100
    endpoints: {}
",
        endpoints(&[hang])
    ));
    let channel = MeshChannel::new(&mesh, "greeter");
    for _ in 0..3 {
        let request = http::Request::post("http://greeter/helloworld.Greeter/SayHello")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(tonic::body::Body::new(Full::new(Bytes::from_static(&[
                0, 0, 0, 0, 0,
            ]))))
            .unwrap();
        let response = channel.clone().oneshot(request).await.unwrap();
        let mut body = response.into_body();
        // The reply arrives; the status never does; the caller walks away.
        let first = body.frame().await.unwrap().unwrap();
        assert!(first.is_data());
        drop(body);
    }
    let cancelled = ("grpc_status", "CANCELLED");
    assert_eq!(scrape(&expo, ATTEMPTS, &[METHOD, cancelled]), 3.0);
    assert_eq!(scrape(&expo, CALLS, &[METHOD, cancelled]), 3.0);
    // Not counted against the endpoint: with consecutive_failures: 1 a
    // single failure would have ejected it and left it without endpoints.
    let mut client = GreeterClient::new(channel);
    let status = tokio::time::timeout(Duration::from_millis(300), client.say_hello(hello())).await;
    assert!(status.is_err(), "the hanging server still gets the call");
    assert_eq!(scrape(&expo, ATTEMPTS, &[METHOD, cancelled]), 4.0);
}
