//! `GrpcServerLayer` on real tonic servers (and, for the body edge cases, on
//! hand-made responses): A66 durations by method and status, wherever the
//! status comes from; early drops; trace context; inherited deadlines.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod server_support;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body::Frame;
use http_body_util::{BodyExt, Empty, StreamBody};
use mesh_tonic::MeshGrpcExt;
use mesh_tonic::server::GrpcServerLayer;
use mesh_tower::ext::PeerIdentity;
use mesh_tower::inherit;
use mesh_tower::trace::TraceParent;
use server_support::{Probe, client, hello, layered, telemetry};
use tower::{Layer, Service, ServiceExt};

const METHOD: &str = "helloworld.Greeter/SayHello";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ok_in_trailers_and_trailers_only_unavailable_are_recorded() {
    let t = telemetry();
    let server = layered(
        GrpcServerLayer::new(&t.metrics, "greeter"),
        Probe::default(),
    )
    .await;
    let mut c = client(server.addr).await;
    for _ in 0..3 {
        c.say_hello(hello("ok")).await.unwrap();
    }
    for _ in 0..2 {
        let err = c.say_hello(hello("fail")).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable);
    }
    let base = [("grpc_method", METHOD), ("mesh_service", "greeter")];
    let ok = [base[0], base[1], ("grpc_status", "OK")];
    let unavailable = [base[0], base[1], ("grpc_status", "UNAVAILABLE")];
    assert_eq!(t.wait_calls(&ok, 3.0).await, 3.0, "{}", t.text());
    assert_eq!(t.wait_calls(&unavailable, 2.0).await, 2.0, "{}", t.text());
    assert_eq!(t.calls(&[]), 5.0, "{}", t.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_method_is_other_so_callers_cannot_grow_the_labels() {
    let t = telemetry();
    let server = layered(
        GrpcServerLayer::new(&t.metrics, "greeter"),
        Probe::default(),
    )
    .await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<
        common::helloworld::HelloRequest,
        common::helloworld::HelloReply,
    >::default();
    let path = http::uri::PathAndQuery::from_static("/no.Such/Method");
    let err = grpc.unary(hello("x"), path, codec).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    let want = [("grpc_method", "other"), ("grpc_status", "UNIMPLEMENTED")];
    assert_eq!(t.wait_calls(&want, 1.0).await, 1.0, "{}", t.text());
    assert_eq!(t.calls(&[("grpc_method", "no.Such/Method")]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_the_client_abandons_is_cancelled() {
    let t = telemetry();
    let server = layered(
        GrpcServerLayer::new(&t.metrics, "greeter"),
        Probe::default(),
    )
    .await;
    let mut c = client(server.addr).await;
    // The client gives up (no grpc-timeout sent): the stream is reset and
    // the server drops the handler.
    let gave_up =
        tokio::time::timeout(Duration::from_millis(200), c.say_hello(hello("slow"))).await;
    assert!(gave_up.is_err());
    let want = [("grpc_method", METHOD), ("grpc_status", "CANCELLED")];
    assert_eq!(t.wait_calls(&want, 1.0).await, 1.0, "{}", t.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_context_reaches_the_handler() {
    let t = telemetry();
    let probe = Probe::default();
    let server = layered(GrpcServerLayer::new(&t.metrics, "greeter"), probe.clone()).await;
    let mut c = client(server.addr).await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut req = hello("traced");
    req.metadata_mut()
        .insert("traceparent", tp.parse().unwrap());
    c.say_hello(req).await.unwrap();
    c.say_hello(hello("untraced")).await.unwrap();
    let seen = probe.traces.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let first = seen[0].as_ref().expect("a trace context");
    assert_eq!(first.parent, tp.parse::<TraceParent>().unwrap());
    assert!(seen[1].is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incoming_deadline_is_inherited_by_mesh_calls_from_the_handler() {
    let t = telemetry();
    // B records the grpc-timeout it receives.
    let b = common::server(common::Behaviour::Ok, 1).await;
    let mesh = common::mesh(&format!(
        "services:\n  b:\n    protocol: grpc\n    endpoints: {}\n",
        common::endpoints(&[b.addr])
    ));
    let probe = Probe {
        downstream: Some(mesh.grpc_channel("b")),
        ..Probe::default()
    };
    let a = layered(GrpcServerLayer::new(&t.metrics, "a"), probe).await;
    let mut c = client(a.addr).await;

    let mut req = hello("chain");
    req.set_timeout(Duration::from_millis(500));
    c.say_hello(req).await.unwrap();
    // Without a deadline upstream, none downstream.
    c.say_hello(hello("chain")).await.unwrap();

    let seen = b.timeouts.all();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let inherited = seen[0].expect("B got a grpc-timeout");
    assert!(
        inherited <= Duration::from_millis(500) && inherited > Duration::from_millis(100),
        "{inherited:?}"
    );
    assert_eq!(seen[1], None);
}

// === the layer on hand-made responses ===

type Frames = Vec<Result<Frame<Bytes>, Infallible>>;
type FrameBody =
    StreamBody<tokio_stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

fn grpc_response(frames: Frames) -> http::Response<FrameBody> {
    http::Response::new(StreamBody::new(tokio_stream::iter(frames)))
}

fn trailers(code: &'static str) -> Frame<Bytes> {
    let mut t = http::HeaderMap::new();
    t.insert("grpc-status", http::HeaderValue::from_static(code));
    Frame::trailers(t)
}

fn request(path: &str) -> http::Request<Empty<Bytes>> {
    http::Request::post(format!("http://x{path}"))
        .body(Empty::new())
        .unwrap()
}

#[tokio::test]
async fn a_status_in_trailers_after_a_message_is_read_from_the_body() {
    let t = telemetry();
    let layer = GrpcServerLayer::new(&t.metrics, "s");
    let svc = layer.layer(tower::service_fn(
        |_req: http::Request<Empty<Bytes>>| async {
            Ok::<_, Infallible>(grpc_response(vec![
                Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\0"))),
                Ok(trailers("14")),
            ]))
        },
    ));
    let response = svc.oneshot(request("/p.S/M")).await.unwrap();
    // Nothing is recorded before the trailers pass.
    assert_eq!(t.calls(&[]), 0.0);
    let collected = response.into_body().collect().await.unwrap();
    assert!(collected.trailers().is_some());
    let want = [
        ("grpc_method", "p.S/M"),
        ("grpc_status", "UNAVAILABLE"),
        ("mesh_service", "s"),
    ];
    assert_eq!(t.calls(&want), 1.0, "{}", t.text());
}

#[tokio::test]
async fn a_body_dropped_before_its_trailers_is_cancelled_and_the_source_labelled() {
    let t = telemetry();
    let layer = GrpcServerLayer::new(&t.metrics, "s");
    let mut svc = layer.layer(tower::service_fn(
        |_req: http::Request<Empty<Bytes>>| async {
            Ok::<_, Infallible>(grpc_response(vec![
                Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\0"))),
                Ok(trailers("0")),
            ]))
        },
    ));
    let mut req = request("/p.S/M");
    let id: mesh_core::identity::SpiffeId =
        "spiffe://mesh.local/ns/default/svc/app-ui".parse().unwrap();
    req.extensions_mut().insert(PeerIdentity(Some(id)));
    let response = svc.ready().await.unwrap().call(req).await.unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    drop(body);
    let want = [
        ("grpc_status", "CANCELLED"),
        ("mesh_source", "spiffe://mesh.local/ns/default/svc/app-ui"),
    ];
    assert_eq!(t.calls(&want), 1.0, "{}", t.text());
    // A response future dropped before the head: cancelled too.
    let pending = svc.ready().await.unwrap().call(request("/p.S/M"));
    drop(pending);
    assert_eq!(
        t.calls(&[("grpc_status", "CANCELLED")]),
        2.0,
        "{}",
        t.text()
    );
}

#[tokio::test(start_paused = true)]
async fn the_handler_runs_in_the_incoming_deadline_and_a_late_drop_is_deadline_exceeded() {
    let t = telemetry();
    let layer = GrpcServerLayer::new(&t.metrics, "s");
    let mut svc = layer.layer(tower::service_fn(
        |_req: http::Request<Empty<Bytes>>| async {
            let left = inherit::remaining();
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, Infallible>(
                http::Response::builder()
                    .header("x-left-ms", left.map_or(-1, |d| d.as_millis() as i64))
                    .header("grpc-status", "0")
                    .body(Empty::<Bytes>::new())
                    .unwrap(),
            )
        },
    ));
    let mut req = request("/p.S/M");
    req.headers_mut()
        .insert("grpc-timeout", http::HeaderValue::from_static("300m"));
    let response = svc.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(response.headers()["x-left-ms"], "300");
    assert_eq!(t.calls(&[("grpc_status", "OK")]), 1.0, "{}", t.text());

    // The same call abandoned after its deadline (tonic's own deadline
    // enforcement drops the handler this way).
    let mut req = request("/p.S/M");
    req.headers_mut()
        .insert("grpc-timeout", http::HeaderValue::from_static("100m"));
    let fut = svc.ready().await.unwrap().call(req);
    assert!(
        tokio::time::timeout(Duration::from_millis(150), fut)
            .await
            .is_err()
    );
    assert_eq!(
        t.calls(&[("grpc_status", "DEADLINE_EXCEEDED")]),
        1.0,
        "{}",
        t.text()
    );
}

#[tokio::test]
async fn a_streaming_body_produces_its_messages_inside_the_deadline() {
    let t = telemetry();
    let layer = GrpcServerLayer::new(&t.metrics, "s");
    let svc = layer.layer(tower::service_fn(
        |_req: http::Request<Empty<Bytes>>| async {
            // Messages made when the body is polled, as a streaming handler's.
            let messages = futures_util::stream::iter([0, 1]).map(|i| {
                let frame = match (i, inherit::deadline()) {
                    (0, Some(_)) => Frame::data(Bytes::from_static(b"in scope")),
                    (0, None) => Frame::data(Bytes::from_static(b"outside")),
                    _ => trailers("0"),
                };
                Ok::<_, Infallible>(frame)
            });
            Ok::<_, Infallible>(http::Response::new(StreamBody::new(messages)))
        },
    ));
    let mut req = request("/p.S/Stream");
    req.headers_mut()
        .insert("grpc-timeout", http::HeaderValue::from_static("5S"));
    let body = svc.oneshot(req).await.unwrap().into_body();
    let collected = body.collect().await.unwrap().to_bytes();
    assert_eq!(collected, "in scope");
    assert_eq!(
        t.calls(&[("grpc_method", "p.S/Stream"), ("grpc_status", "OK")]),
        1.0
    );
}
