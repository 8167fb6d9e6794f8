use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use http::{Request, Response};
use mesh_core::Endpoint;
use mesh_core::circuit::Limit;
use mesh_core::config::{
    Algorithm, CircuitBreakerConfig, HashOn, LoadBalancerConfig, OutlierConfig, ServiceConfig,
};
use mesh_discovery::Update;
use tower::ServiceExt;
use tower_test::mock;

use super::*;
use crate::body::MeshBody;
use crate::error::{EndpointError, ErrorKind, kind};
use crate::ext::ServedBy;

type Mock = mock::Mock<Request<MeshBody>, Response<String>>;
type Handle = mock::Handle<Request<MeshBody>, Response<String>>;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

fn ep(port: u16) -> Endpoint {
    Endpoint::new(addr(port))
}

fn req() -> Request<MeshBody> {
    Request::builder()
        .uri("http://news/path?q=1")
        .body(MeshBody::empty())
        .unwrap()
}

fn setup(config: &ServiceConfig) -> (Balance<Mock>, Handle, EndpointPool) {
    let pool = EndpointPool::builder("news", config).build().unwrap();
    let (mock, handle) = mock::pair();
    (Balance::new(mock, pool.clone()), handle, pool)
}

fn served_port(req: &Request<MeshBody>) -> u16 {
    req.uri().port_u16().unwrap()
}

/// Sends one request, answers it with `status(port)`, returns the port.
async fn roundtrip(
    svc: &mut Balance<Mock>,
    handle: &mut Handle,
    request: Request<MeshBody>,
    status: impl Fn(u16) -> u16,
) -> Result<u16, BoxError> {
    let fut = svc.ready().await?.call(request);
    let (got, send) = handle.next_request().await.unwrap();
    let port = served_port(&got);
    send.send_response(
        Response::builder()
            .status(status(port))
            .body(String::new())
            .unwrap(),
    );
    let response = fut.await?;
    assert_eq!(
        response.extensions().get::<ServedBy>(),
        Some(&ServedBy(addr(port)))
    );
    Ok(port)
}

#[tokio::test(start_paused = true)]
async fn waits_bounded_then_fails_with_no_endpoints() {
    let (mut svc, _handle, pool) = setup(&ServiceConfig::default());
    assert_eq!(pool.discovery_state(), DiscoveryState::Waiting);
    let start = tokio::time::Instant::now();
    let err = svc.ready().await.unwrap().call(req()).await.unwrap_err();
    assert_eq!(start.elapsed(), DEFAULT_WAIT_FOR_ENDPOINTS);
    assert_eq!(kind(&*err), ErrorKind::NoEndpoints);
    let no = err.downcast_ref::<crate::error::NoEndpoints>().unwrap();
    assert_eq!(&*no.service, "news");
    assert!(
        no.reason.contains("discovery found none within 2s"),
        "{}",
        no.reason
    );
}

#[tokio::test(start_paused = true)]
async fn endpoints_arriving_during_the_wait_take_the_request() {
    let (mut svc, mut handle, pool) = setup(&ServiceConfig::default());
    let fut = tokio::spawn(svc.ready().await.unwrap().call(req()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    pool.apply(Update::Reset(vec![ep(1)]));
    let (got, send) = handle.next_request().await.unwrap();
    assert_eq!(got.uri().to_string(), "http://10.0.0.1:1/path?q=1");
    assert_eq!(got.headers()["host"], "news");
    send.send_response(Response::new("ok".to_string()));
    let response = fut.await.unwrap().unwrap();
    assert_eq!(
        response.extensions().get::<ServedBy>(),
        Some(&ServedBy(addr(1)))
    );
}

#[tokio::test(start_paused = true)]
async fn a_service_that_does_not_exist_fails_at_once() {
    let (mut svc, _handle, pool) = setup(&ServiceConfig::default());
    pool.apply(Update::DoesNotExist);
    let start = tokio::time::Instant::now();
    let err = svc.ready().await.unwrap().call(req()).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(kind(&*err), ErrorKind::NoEndpoints);
    assert!(err.to_string().contains("service does not exist"));
}

#[tokio::test(start_paused = true)]
async fn max_requests_fails_fast_and_closes_again() {
    let config = ServiceConfig {
        circuit_breaker: CircuitBreakerConfig {
            max_requests: 2,
            max_pending: 8,
        },
        ..ServiceConfig::default()
    };
    let (mut svc, mut handle, pool) = setup(&config);
    pool.apply(Update::Reset(vec![ep(1), ep(2)]));
    let a = svc.ready().await.unwrap().call(req());
    let b = svc.ready().await.unwrap().call(req());
    let err = svc.ready().await.unwrap().call(req()).await.unwrap_err();
    assert_eq!(kind(&*err), ErrorKind::CircuitOpen);
    let open = err.downcast_ref::<CircuitOpen>().unwrap();
    assert_eq!(open.source.limit(), Limit::Requests);
    assert_eq!(pool.limits().in_flight(), 2);
    // Finishing one attempt frees its slot.
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(Response::new(String::new()));
    a.await.unwrap();
    assert_eq!(pool.limits().in_flight(), 1);
    let c = svc.ready().await.unwrap().call(req());
    drop((b, c));
    assert_eq!(pool.limits().in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn max_pending_bounds_the_requests_waiting_for_endpoints() {
    let config = ServiceConfig {
        circuit_breaker: CircuitBreakerConfig {
            max_requests: 8,
            max_pending: 1,
        },
        ..ServiceConfig::default()
    };
    let (mut svc, _handle, _pool) = setup(&config);
    let waiting = tokio::spawn(svc.ready().await.unwrap().call(req()));
    tokio::task::yield_now().await;
    let err = svc.ready().await.unwrap().call(req()).await.unwrap_err();
    let open = err.downcast_ref::<CircuitOpen>().unwrap();
    assert_eq!(open.source.limit(), Limit::Pending);
    let first = waiting.await.unwrap().unwrap_err();
    assert_eq!(kind(&*first), ErrorKind::NoEndpoints);
}

#[tokio::test]
async fn tried_endpoints_are_avoided() {
    let (mut svc, mut handle, pool) = setup(&ServiceConfig::default());
    pool.apply(Update::Reset(vec![ep(1), ep(2), ep(3)]));
    for _ in 0..50 {
        let mut r = req();
        r.extensions_mut()
            .insert(TriedEndpoints(vec![addr(1), addr(3)]));
        let port = roundtrip(&mut svc, &mut handle, r, |_| 200).await.unwrap();
        assert_eq!(port, 2);
    }
}

#[tokio::test]
async fn subsets_and_weights_pick_within_the_set() {
    let mut config = ServiceConfig {
        load_balancer: LoadBalancerConfig {
            algorithm: Algorithm::WeightedRoundRobin,
            ..LoadBalancerConfig::default()
        },
        ..ServiceConfig::default()
    };
    config
        .subsets
        .insert("v2".into(), [("version".into(), "v2".into())].into());
    let (mut svc, mut handle, pool) = setup(&config);
    pool.apply(Update::Reset(vec![
        ep(1).with_weight(3).with_label("version", "v1"),
        ep(2).with_label("version", "v2"),
        ep(3).with_weight(2).with_label("version", "v2"),
    ]));
    let mut counts = [0u32; 4];
    for _ in 0..600 {
        let mut r = req();
        r.extensions_mut().insert(Subset(Some(0)));
        counts[roundtrip(&mut svc, &mut handle, r, |_| 200).await.unwrap() as usize] += 1;
    }
    assert_eq!(counts, [0, 0, 200, 400]);
    let mut counts = [0u32; 4];
    for _ in 0..600 {
        counts[roundtrip(&mut svc, &mut handle, req(), |_| 200)
            .await
            .unwrap() as usize] += 1;
    }
    assert_eq!(counts, [0, 300, 100, 200]);
}

#[tokio::test]
async fn hash_on_header_is_sticky() {
    let config = ServiceConfig {
        load_balancer: LoadBalancerConfig {
            algorithm: Algorithm::RingHash {
                min_ring_size: 1024,
                max_ring_size: 8192,
            },
            ..LoadBalancerConfig::default()
        },
        hash_on: Some(HashOn::Header("x-user".into())),
        ..ServiceConfig::default()
    };
    let (mut svc, mut handle, pool) = setup(&config);
    pool.apply(Update::Reset((1..=5).map(ep).collect()));
    let mut seen = std::collections::HashSet::new();
    for user in 0..40 {
        let with_user = || {
            let mut r = req();
            r.headers_mut()
                .insert("x-user", format!("user-{user}").parse().unwrap());
            r
        };
        let first = roundtrip(&mut svc, &mut handle, with_user(), |_| 200)
            .await
            .unwrap();
        seen.insert(first);
        for _ in 0..5 {
            assert_eq!(
                roundtrip(&mut svc, &mut handle, with_user(), |_| 200)
                    .await
                    .unwrap(),
                first
            );
        }
    }
    assert!(seen.len() >= 3, "40 users on {} endpoints", seen.len());
}

#[tokio::test]
async fn errors_name_the_endpoint() {
    let (mut svc, mut handle, pool) = setup(&ServiceConfig::default());
    pool.apply(Update::Reset(vec![ep(7)]));
    let fut = svc.ready().await.unwrap().call(req());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
    let err = fut.await.unwrap_err();
    let e = err.downcast_ref::<EndpointError>().unwrap();
    assert_eq!(e.endpoint, addr(7));
    assert_eq!(kind(&*err), ErrorKind::ConnectFailure);
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_eject_and_the_endpoint_comes_back() {
    let config = ServiceConfig {
        load_balancer: LoadBalancerConfig {
            algorithm: Algorithm::RoundRobin,
            ..LoadBalancerConfig::default()
        },
        outlier_detection: Some(OutlierConfig {
            consecutive_failures: Some(3),
            max_ejected_percent: 50,
            interval: Duration::from_secs(1),
            base_ejection: Duration::from_secs(5),
            ..OutlierConfig::default()
        }),
        ..ServiceConfig::default()
    };
    let pool = EndpointPool::builder("news", &config)
        .updates(Box::pin(
            futures_util::stream::iter([Update::Reset(vec![ep(1), ep(2)])])
                .chain(futures_util::stream::pending()),
        ))
        .build()
        .unwrap();
    pool.start();
    while pool.endpoints().is_empty() {
        tokio::task::yield_now().await;
    }
    let (mock, mut handle) = mock::pair();
    let mut svc = Balance::new(mock, pool.clone());
    let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let status = |port: u16| {
        if port == 1 && failing.load(std::sync::atomic::Ordering::Relaxed) {
            503
        } else {
            200
        }
    };
    let mut to_1 = 0;
    for _ in 0..20 {
        if roundtrip(&mut svc, &mut handle, req(), status)
            .await
            .unwrap()
            == 1
        {
            to_1 += 1;
        }
    }
    assert_eq!(to_1, 3, "ejected after 3 consecutive failures");
    assert_eq!(pool.ejected(), vec![addr(1)]);
    // After the ejection (5s) and the next evaluation, it is back.
    failing.store(false, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(pool.ejected().is_empty());
    let mut to_1 = 0;
    for _ in 0..20 {
        if roundtrip(&mut svc, &mut handle, req(), status)
            .await
            .unwrap()
            == 1
        {
            to_1 += 1;
        }
    }
    assert!(to_1 >= 5, "back in rotation: {to_1}");
}

#[tokio::test]
async fn a_removed_endpoint_drains_its_in_flight_requests() {
    let (mut svc, mut handle, pool) = setup(&ServiceConfig::default());
    pool.apply(Update::Reset(vec![ep(1)]));
    let in_flight = svc.ready().await.unwrap().call(req());
    let (got, send) = handle.next_request().await.unwrap();
    assert_eq!(served_port(&got), 1);
    pool.apply(Update::Reset(vec![ep(2)]));
    assert_eq!(pool.endpoints(), vec![addr(2)]);
    send.send_response(Response::new("late".into()));
    let response = in_flight.await.unwrap();
    assert_eq!(response.into_body(), "late");
    assert_eq!(
        roundtrip(&mut svc, &mut handle, req(), |_| 200)
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn the_background_task_ends_with_the_last_handle() {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Update>();
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|u| (u, rx)) });
    let pool = EndpointPool::builder("news", &ServiceConfig::default())
        .updates(Box::pin(stream))
        .build()
        .unwrap();
    pool.start();
    tx.send(Update::Reset(vec![ep(1)])).unwrap();
    for _ in 0..100 {
        if !pool.endpoints().is_empty() {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(pool.endpoints(), vec![addr(1)]);
    drop(pool);
    // The task dropped the stream, and with it the receiver.
    for _ in 0..100 {
        if tx.is_closed() {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(tx.is_closed());
}

#[tokio::test(start_paused = true)]
async fn a_new_endpoint_ramps_up_with_slow_start() {
    let config = ServiceConfig {
        load_balancer: LoadBalancerConfig {
            algorithm: Algorithm::WeightedRoundRobin,
            ..LoadBalancerConfig::default()
        },
        outlier_detection: Some(OutlierConfig {
            slow_start: Some(Duration::from_secs(10)),
            ..OutlierConfig::default()
        }),
        ..ServiceConfig::default()
    };
    let (mut svc, mut handle, pool) = setup(&config);
    pool.apply(Update::Reset(vec![ep(1)]));
    pool.apply(Update::Add(vec![ep(2)]));
    // Just added: about 10% of its weight (1/11 of the traffic).
    let early = count_to_2(&mut svc, &mut handle, 220).await;
    assert!((10..=40).contains(&early), "early share {early}/220");
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(count_to_2(&mut svc, &mut handle, 200).await, 100);
}

async fn count_to_2(svc: &mut Balance<Mock>, handle: &mut Handle, n: usize) -> usize {
    let mut to_2 = 0;
    for _ in 0..n {
        if roundtrip(svc, handle, req(), |_| 200).await.unwrap() == 2 {
            to_2 += 1;
        }
    }
    to_2
}
