use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::metrics::MeterProvider;
use tower::{Layer, Service, ServiceExt};
use tower_test::mock;

use super::prometheus::{Exposition, pipeline};
use super::*;
use crate::error::{BoxError, Elapsed, EndpointError, NoEndpoints, TimeoutKind};
use crate::ext::{RouteInfo, RoutePolicy, ServedBy};
use crate::trace::{SeededIds, TRACEPARENT, TraceParent};

/// Parsed exposition: (name, labels) -> value.
pub(crate) struct Scrape(Vec<(String, BTreeMap<String, String>, f64)>);

impl Scrape {
    pub(crate) fn of(e: &Exposition) -> Scrape {
        Scrape::parse(&e.render().unwrap())
    }

    pub(crate) fn parse(text: &str) -> Scrape {
        let mut out = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let mut map = BTreeMap::new();
            for pair in labels.split("\",").filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once("=\"").unwrap();
                map.insert(k.to_string(), v.trim_end_matches('"').to_string());
            }
            out.push((name.to_string(), map, value.parse().unwrap()));
        }
        Scrape(out)
    }

    /// The sum over series named `name` whose labels include `want`.
    pub(crate) fn get(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(n, labels, _)| {
                n == name
                    && want
                        .iter()
                        .all(|(k, v)| labels.get(*k).map(String::as_str).unwrap_or("") == *v)
            })
            .map(|(_, _, v)| v)
            .sum()
    }
}

pub(crate) fn setup() -> (
    opentelemetry_sdk::metrics::SdkMeterProvider,
    Exposition,
    Metrics,
) {
    let (provider, exposition) = pipeline(Some("test")).unwrap();
    let metrics = Metrics::new(&provider.meter(SCOPE));
    (provider, exposition, metrics)
}

type Req = http::Request<()>;
type Resp = http::Response<()>;

fn route(name: &str) -> RouteInfo {
    RouteInfo(Arc::new(RoutePolicy {
        service: "news".into(),
        route: name.into(),
        timeout: None,
        retry: None,
    }))
}

fn get_with_route(r: &str) -> Req {
    let mut req = http::Request::get("http://news/x").body(()).unwrap();
    req.extensions_mut().insert(route(r));
    req
}

const EP: &str = "127.0.0.1:8081";
const DURATION_COUNT: &str = "http_client_request_duration_seconds_count";
const ACTIVE: &str = "http_client_active_requests";

fn served(status: u16) -> Resp {
    let mut resp = http::Response::builder().status(status).body(()).unwrap();
    resp.extensions_mut()
        .insert(ServedBy(EP.parse::<SocketAddr>().unwrap()));
    resp
}

#[tokio::test(start_paused = true)]
async fn records_success_with_all_labels_and_in_flight_returns_to_zero() {
    let (_p, expo, metrics) = setup();
    let layer = MetricsLayer::client(metrics.clone(), metrics.service("news"));
    let (inner, mut handle) = mock::pair::<Req, Resp>();
    let mut svc = layer.layer(inner);

    let call = svc.ready().await.unwrap().call(get_with_route("api"));
    let call = tokio::spawn(call);
    let (req, respond) = handle.next_request().await.unwrap();
    // No trace context: the default (propagate) starts no trace.
    assert!(req.headers().get(TRACEPARENT).is_none());
    let s = Scrape::of(&expo);
    assert_eq!(s.get(ACTIVE, &[("mesh_service", "news")]), 1.0);
    assert_eq!(s.get(DURATION_COUNT, &[]), 0.0);

    tokio::time::advance(Duration::from_millis(30)).await;
    respond.send_response(served(200));
    let resp = call.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);

    let s = Scrape::of(&expo);
    let labels = [
        ("mesh_service", "news"),
        ("http_route", "api"),
        ("mesh_endpoint", EP),
        ("http_request_method", "GET"),
        ("http_response_status_code", "200"),
    ];
    assert_eq!(s.get(DURATION_COUNT, &labels), 1.0);
    // 30 ms lands in the 50 ms bucket, not the 25 ms one.
    let bucket = "http_client_request_duration_seconds_bucket";
    assert_eq!(s.get(bucket, &[("le", "0.025")]), 0.0);
    assert_eq!(s.get(bucket, &[("le", "0.05")]), 1.0);
    let sum = s.get("http_client_request_duration_seconds_sum", &labels);
    assert!((sum - 0.030).abs() < 1e-3, "sum {sum}");
    assert_eq!(s.get(ACTIVE, &[("mesh_service", "news")]), 0.0);
}

#[tokio::test]
async fn records_5xx_by_status_code_and_route_from_the_response() {
    let (_p, expo, metrics) = setup();
    let layer = MetricsLayer::client(metrics.clone(), metrics.service("news"));
    let (inner, mut handle) = mock::pair::<Req, Resp>();
    let mut svc = layer.layer(inner);
    handle.allow(2);
    for _ in 0..2 {
        let req = http::Request::post("http://news/x").body(()).unwrap();
        let call = tokio::spawn(svc.ready().await.unwrap().call(req));
        let (_, respond) = handle.next_request().await.unwrap();
        // A router inside the metrics layer puts RouteInfo on the response.
        let mut resp = served(503);
        resp.extensions_mut().insert(route("writes"));
        respond.send_response(resp);
        assert_eq!(call.await.unwrap().unwrap().status(), 503);
    }
    let s = Scrape::of(&expo);
    let labels = [
        ("http_route", "writes"),
        ("mesh_endpoint", EP),
        ("http_request_method", "POST"),
        ("http_response_status_code", "503"),
    ];
    assert_eq!(s.get(DURATION_COUNT, &labels), 2.0);
    assert_eq!(
        s.get(DURATION_COUNT, &[("http_response_status_code", "200")]),
        0.0
    );
}

#[tokio::test]
async fn records_errors_by_kind_with_the_endpoint_from_the_cause_chain() {
    let (_p, expo, metrics) = setup();
    let layer = MetricsLayer::client(metrics.clone(), metrics.service("news"));
    let (inner, mut handle) = mock::pair::<Req, Resp>();
    let mut svc = layer.layer(inner);
    handle.allow(2);

    let call = tokio::spawn(svc.ready().await.unwrap().call(get_with_route("api")));
    let (_, respond) = handle.next_request().await.unwrap();
    let err: BoxError = Box::new(EndpointError {
        endpoint: EP.parse().unwrap(),
        source: Box::new(Elapsed {
            kind: TimeoutKind::PerTry,
            after: Duration::from_millis(100),
        }),
    });
    respond.send_error(err);
    let err = call.await.unwrap().unwrap_err();
    assert!(err.is::<EndpointError>(), "error passed through unchanged");

    let call = tokio::spawn(svc.ready().await.unwrap().call(get_with_route("api")));
    let (_, respond) = handle.next_request().await.unwrap();
    respond.send_error(NoEndpoints {
        service: "news".into(),
        reason: "none".into(),
    });
    call.await.unwrap().unwrap_err();

    let s = Scrape::of(&expo);
    assert_eq!(
        s.get(
            DURATION_COUNT,
            &[("error_type", "timeout"), ("mesh_endpoint", EP)]
        ),
        1.0
    );
    assert_eq!(
        s.get(
            DURATION_COUNT,
            &[("error_type", "no_endpoints"), ("mesh_endpoint", "")]
        ),
        1.0
    );
    assert_eq!(
        s.get(DURATION_COUNT, &[("http_response_status_code", "")]),
        2.0
    );
    assert_eq!(s.get(ACTIVE, &[]), 0.0);
}

#[tokio::test]
async fn a_dropped_call_leaves_the_in_flight_gauge_without_a_duration() {
    let (_p, expo, metrics) = setup();
    let layer = MetricsLayer::client(metrics.clone(), metrics.service("news"));
    let (inner, mut handle) = mock::pair::<Req, Resp>();
    let mut svc = layer.layer(inner);
    handle.allow(1);
    let call = svc.ready().await.unwrap().call(get_with_route("api"));
    assert_eq!(Scrape::of(&expo).get(ACTIVE, &[]), 1.0);
    drop(call);
    let s = Scrape::of(&expo);
    assert_eq!(s.get(ACTIVE, &[]), 0.0);
    assert_eq!(s.get(DURATION_COUNT, &[]), 0.0);
}

#[tokio::test]
async fn trace_injection_uses_the_injected_ids_and_can_be_turned_off() {
    let (_p, _expo, metrics) = setup();
    let labels = metrics.service("news");
    let ids = Arc::new(SeededIds::new(42));
    let (inner, mut handle) = mock::pair::<Req, Resp>();
    let mut svc = MetricsLayer::client(metrics.clone(), labels.clone())
        .with_ids(ids)
        .trace_mode(mesh_core::config::TraceMode::Originate)
        .layer(inner);
    handle.allow(1);
    let _call = tokio::spawn(svc.ready().await.unwrap().call(get_with_route("a")));
    let (req, _respond) = handle.next_request().await.unwrap();
    let sent = TraceParent::from_header(&req.headers()[TRACEPARENT]).unwrap();
    let expected = TraceParent::new_root(&SeededIds::new(42), crate::trace::TraceFlags::SAMPLED);
    assert_eq!(sent, expected);

    let (inner, mut handle) = mock::pair::<Req, Resp>();
    let mut svc = MetricsLayer::client(metrics, labels)
        .without_trace()
        .layer(inner);
    handle.allow(1);
    let _call = tokio::spawn(svc.ready().await.unwrap().call(get_with_route("a")));
    let (req, _respond) = handle.next_request().await.unwrap();
    assert!(req.headers().get(TRACEPARENT).is_none());
}

#[test]
fn counters_and_gauges_for_the_client_core() {
    let (_p, expo, metrics) = setup();
    let news = metrics.service("news");
    let ep: SocketAddr = EP.parse().unwrap();
    metrics.record_retry(&news);
    metrics.record_retry(&news);
    metrics.record_circuit_open(&news);
    metrics.record_ejection(&news, ep);
    metrics.set_endpoints(&news, 3, 1);
    metrics.set_endpoints(&news, 4, 0);
    let s = Scrape::of(&expo);
    let svc = ("mesh_service", "news");
    assert_eq!(s.get("mesh_client_retries_total", &[svc]), 2.0);
    assert_eq!(s.get("mesh_client_circuit_open_total", &[svc]), 1.0);
    assert_eq!(
        s.get(
            "mesh_outlier_ejections_total",
            &[svc, ("mesh_endpoint", EP)]
        ),
        1.0
    );
    assert_eq!(
        s.get("mesh_endpoints", &[svc, ("mesh_endpoint_state", "ready")]),
        4.0
    );
    assert_eq!(
        s.get("mesh_endpoints", &[svc, ("mesh_endpoint_state", "ejected")]),
        0.0
    );
}

#[test]
fn endpoint_values_are_formatted_once_per_endpoint() {
    let labels = ServiceLabels::new("news".into());
    let ep: SocketAddr = EP.parse().unwrap();
    let a = labels.endpoint_value(ep);
    let b = labels.endpoint_value(ep);
    assert_eq!(a.as_str(), EP);
    // Same Arc: the second lookup hit the cache.
    match (&a, &b) {
        (opentelemetry::Value::String(x), opentelemetry::Value::String(y)) => {
            assert!(std::ptr::eq(x.as_str().as_ptr(), y.as_str().as_ptr()));
        }
        _ => panic!("string values expected"),
    }
    labels.endpoint_value("[::1]:80".parse().unwrap());
    assert_eq!(
        format!("{labels:?}"),
        "ServiceLabels { name: \"news\", endpoints_cached: 2 }"
    );
}

#[test]
fn methods_map_to_static_values_and_other() {
    assert_eq!(method_value(&http::Method::GET).as_str(), "GET");
    assert_eq!(method_value(&http::Method::PATCH).as_str(), "PATCH");
    let custom = http::Method::from_bytes(b"PURGE").unwrap();
    assert_eq!(method_value(&custom).as_str(), "_OTHER");
}

#[test]
fn attrs_buffer_never_overflows() {
    let mut a = Attrs::new();
    for i in 0..10 {
        a.push(kv(SERVICE, i64::from(i)));
    }
    assert_eq!(a.as_slice().len(), 6);
}

#[test]
fn the_label_cache_returns_what_was_inserted() {
    let cache: LabelCache<Box<str>> = LabelCache::new();
    assert!(cache.get("a").is_none());
    cache.insert("a".into(), opentelemetry::Value::from("A"));
    cache.insert("a".into(), opentelemetry::Value::from("other"));
    assert_eq!(cache.get("a"), Some(opentelemetry::Value::from("A")));
}
