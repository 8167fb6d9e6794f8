//! `MESH_TRACE` / `MeshBuilder::trace`: what the mesh client does with W3C
//! trace context, seen by a real axum upstream on 127.0.0.1 that echoes the
//! `traceparent` it got.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;

use axum::Router;
use axum::http::HeaderMap;
use http_body_util::{BodyExt, Empty};
use mesh_core::config::{Format, MeshEnv, TraceMode, parse_str};
use mesh_tower::Mesh;
use mesh_tower::trace::{TraceContext, TraceParent};
use tower::ServiceExt;

/// An upstream answering with the `traceparent` it got, or `-`.
async fn echo() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let app = Router::new().fallback(|headers: HeaderMap| async move {
        headers
            .get("traceparent")
            .map_or("-".to_string(), |v| v.to_str().unwrap().to_string())
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, task)
}

fn mesh(addr: SocketAddr, mode: Option<TraceMode>) -> Mesh {
    let yaml = format!("services:\n  news:\n    endpoints: [ {{ address: \"{addr}\" }} ]\n");
    let mut builder = Mesh::builder().config(parse_str(&yaml, Format::Yaml, "test.yaml").unwrap());
    if let Some(mode) = mode {
        builder = builder.trace(mode);
    }
    builder.build().unwrap()
}

/// What the upstream saw for a call with the given incoming context.
async fn sent(mesh: &Mesh, context: Option<&TraceContext>) -> String {
    let mut req = http::Request::get("http://news/")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    if let Some(ctx) = context {
        req.extensions_mut().insert(ctx.clone());
    }
    let response = mesh.client("news").oneshot(req).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

fn incoming() -> TraceContext {
    let parent: TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        .parse()
        .unwrap();
    TraceContext {
        parent,
        state: None,
    }
}

/// A child of `ctx`: the same trace, a new span.
fn is_child(sent: &str, ctx: &TraceContext) -> bool {
    let got: TraceParent = sent.parse().unwrap();
    got.trace_id == ctx.parent.trace_id && got.parent_id != ctx.parent.parent_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagate_by_default_originate_always_off_never() {
    let (addr, server) = echo().await;
    let ctx = incoming();

    // The default: nothing without context, a child with it.
    for propagate in [mesh(addr, None), mesh(addr, Some(TraceMode::Propagate))] {
        assert_eq!(sent(&propagate, None).await, "-");
        assert!(is_child(&sent(&propagate, Some(&ctx)).await, &ctx));
    }

    // Originate: a new trace without context, a child with it.
    let originate = mesh(addr, Some(TraceMode::Originate));
    let root: TraceParent = sent(&originate, None).await.parse().unwrap();
    assert_ne!(root.trace_id, ctx.parent.trace_id);
    assert!(root.flags.is_sampled());
    assert!(is_child(&sent(&originate, Some(&ctx)).await, &ctx));

    let off = mesh(addr, Some(TraceMode::Off));
    assert_eq!(sent(&off, None).await, "-");
    assert_eq!(sent(&off, Some(&ctx)).await, "-");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_trace_comes_from_the_environment_and_a_callers_own_header_passes() {
    let (addr, server) = echo().await;
    let env = MeshEnv::from_vars([("MESH_TRACE".to_string(), "off".to_string())]).unwrap();
    let yaml = format!("services:\n  news:\n    endpoints: [ {{ address: \"{addr}\" }} ]\n");
    let mesh = Mesh::builder()
        .config(parse_str(&yaml, Format::Yaml, "test.yaml").unwrap())
        .env(&env)
        .build()
        .unwrap();
    assert_eq!(sent(&mesh, Some(&incoming())).await, "-");
    // A caller's own header is never touched.
    let own = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let req = http::Request::get("http://news/")
        .header("traceparent", own)
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = mesh.client("news").oneshot(req).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, own);
    server.abort();
}
