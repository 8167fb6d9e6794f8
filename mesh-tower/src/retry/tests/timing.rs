//! Timeouts, the deadline, backoff and server pushback.

use super::*;

#[tokio::test(start_paused = true)]
async fn per_try_timeout_is_retried_under_reset_5xx_and_gateway_error_only() {
    for (on, retried) in [
        (RetryOn::Reset, true),
        (RetryOn::Server5xx, true),
        (RetryOn::GatewayError, true),
        (RetryOn::ConnectFailure, false),
        (RetryOn::Unavailable, false),
    ] {
        let (svc, mut handle) = mock::pair::<Request<MeshBody>, Response<String>>();
        let svc = tower::ServiceBuilder::new()
            .layer(RetryLayer::new(Some(policy(|c| c.on = vec![on]))))
            .layer(TimeoutLayer::per_try(Some(Duration::from_millis(100))))
            .service(svc);
        let start = Instant::now();
        let call = tokio::spawn(svc.oneshot(get(MeshBody::empty())));
        let (_, hung) = handle.next_request().await.unwrap();
        if retried {
            let (_, send) = handle.next_request().await.unwrap();
            assert!(start.elapsed() >= Duration::from_millis(100), "{on:?}");
            send.send_response(status(200));
            let resp = call.await.unwrap().unwrap();
            assert_eq!(
                resp.extensions().get::<Attempts>(),
                Some(&Attempts(2)),
                "{on:?}"
            );
        } else {
            let err = call.await.unwrap().unwrap_err();
            let elapsed = err.downcast_ref::<crate::error::Elapsed>().unwrap();
            assert_eq!(elapsed.kind, crate::error::TimeoutKind::PerTry, "{on:?}");
            assert_eq!(start.elapsed(), Duration::from_millis(100), "{on:?}");
        }
        drop(hung);
    }
}

#[tokio::test(start_paused = true)]
async fn per_try_never_outlasts_the_deadline_and_the_call_timeout_holds() {
    let (svc, mut handle) = mock::pair::<Request<MeshBody>, Response<String>>();
    let svc = tower::ServiceBuilder::new()
        .layer(TimeoutLayer::call(Some(Duration::from_millis(1000))))
        .layer(RetryLayer::new(Some(policy(|c| {
            c.on = vec![RetryOn::Reset];
            c.attempts = 5;
        }))))
        .layer(TimeoutLayer::per_try(Some(Duration::from_millis(800))))
        .service(svc);
    let start = Instant::now();
    let call = tokio::spawn(svc.oneshot(get(MeshBody::empty())));
    let mut sent = Vec::new();
    let mut hung = Vec::new();
    let collector = tokio::spawn(async move {
        while let Some((_, send)) = handle.next_request().await {
            sent.push(start.elapsed());
            hung.push(send);
        }
        sent
    });
    let err = call.await.unwrap().unwrap_err();
    // The second attempt's timer was clamped to the ~175ms left: the call
    // ends at its deadline, not at 800ms + backoff + 800ms.
    assert_eq!(start.elapsed(), Duration::from_millis(1000));
    let elapsed = err.downcast_ref::<crate::error::Elapsed>().unwrap();
    assert_eq!(elapsed.kind, crate::error::TimeoutKind::Call);
    let sent = collector.await.unwrap();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.iter().all(|t| *t < Duration::from_millis(1000)));
}

#[tokio::test(start_paused = true)]
async fn no_retry_is_sent_after_the_deadline_even_with_many_attempts() {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let start = Instant::now();
    let last = Arc::new(parking_lot::Mutex::new(Duration::ZERO));
    let last_seen = last.clone();
    let upstream = tower::service_fn(move |_req: Request<MeshBody>| {
        counted.fetch_add(1, Ordering::SeqCst);
        *last_seen.lock() = start.elapsed();
        async { Ok::<_, BoxError>(status(503)) }
    });
    let svc = tower::ServiceBuilder::new()
        .layer(TimeoutLayer::call(Some(Duration::from_millis(500))))
        .layer(
            RetryLayer::new(Some(policy(|c| {
                c.attempts = 10;
                c.backoff = BackoffConfig {
                    base: Duration::from_millis(100),
                    max: Duration::from_secs(1),
                };
            })))
            .seed(3)
            .budget(budget(10.0, 100)),
        )
        .service(upstream);
    let result = svc.oneshot(get(MeshBody::empty())).await;
    assert!(start.elapsed() <= Duration::from_millis(500));
    assert!(*last.lock() < Duration::from_millis(500));
    let n = calls.load(Ordering::SeqCst);
    assert!((2..10).contains(&n), "{n} attempts");
    // Either the last 503 (the next backoff would not fit) or the call timeout.
    if let Ok(resp) = result {
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.extensions().get::<Attempts>(), Some(&Attempts(n)));
    }
}

/// The gaps between the attempts of one call that always fails.
async fn gaps(seed: u64, attempts: u32, backoff: BackoffConfig) -> Vec<Duration> {
    let times = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let seen = times.clone();
    let upstream = tower::service_fn(move |_req: Request<MeshBody>| {
        seen.lock().push(Instant::now());
        async { Ok::<_, BoxError>(status(503)) }
    });
    let svc = RetryLayer::new(Some(policy(|c| {
        c.attempts = attempts;
        c.backoff = backoff;
    })))
    .seed(seed)
    .budget(budget(1000.0, 1000))
    .layer(upstream);
    svc.oneshot(get(MeshBody::empty())).await.unwrap();
    let times = times.lock();
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn backoff_grows_and_is_jittered_within_bounds() {
    let config = BackoffConfig {
        base: Duration::from_millis(100),
        max: Duration::from_millis(1000),
    };
    let ceiling = Backoff::new(&config);
    let mut sums = [Duration::ZERO; 5];
    let runs = 40;
    for seed in 0..runs {
        let gaps = gaps(seed, 6, config).await;
        assert_eq!(gaps.len(), 5);
        for (n, gap) in gaps.iter().enumerate() {
            assert!(
                *gap <= ceiling.ceiling(n as u32 + 1),
                "retry {}: {gap:?}",
                n + 1
            );
            sums[n] += *gap;
        }
    }
    // Full jitter: each retry's mean delay is about half its ceiling
    // (50, 100, 200, 400, 500 ms), so the delays grow, and they differ.
    for (n, sum) in sums.iter().enumerate() {
        let mean = *sum / runs as u32;
        let half = ceiling.ceiling(n as u32 + 1) / 2;
        assert!(
            mean > half.mul_f64(0.7) && mean < half.mul_f64(1.3),
            "retry {}: mean {mean:?}, half ceiling {half:?}",
            n + 1
        );
    }
    assert!(sums[3] > sums[1] && sums[1] > sums[0]);
    // Seeded: the same seed gives the same delays, another seed others.
    assert_eq!(gaps(7, 6, config).await, gaps(7, 6, config).await);
    assert_ne!(gaps(7, 6, config).await, gaps(8, 6, config).await);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_and_a_too_long_one_stops() {
    let (call, mut handle) = spawn(
        RetryLayer::new(Some(policy(|_| {}))),
        get(MeshBody::empty()),
    );
    let (_, send) = handle.next_request().await.unwrap();
    let start = Instant::now();
    let mut resp = status(503);
    resp.headers_mut()
        .insert("retry-after", "2".parse().unwrap());
    send.send_response(resp);
    let (_, send) = handle.next_request().await.unwrap();
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(2),
        "instead of the <=25ms backoff"
    );
    send.send_response(status(200));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);

    // Longer than max_pushback: the 503 goes back to the caller at once.
    let layer = RetryLayer::new(Some(policy(|_| {}))).max_pushback(Duration::from_secs(5));
    let (call, mut handle) = spawn(layer, get(MeshBody::empty()));
    let (_, send) = handle.next_request().await.unwrap();
    let mut resp = status(503);
    resp.headers_mut()
        .insert("retry-after", "60".parse().unwrap());
    send.send_response(resp);
    let resp = call.await.unwrap().unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.extensions().get::<Attempts>(), Some(&Attempts(1)));

    // Longer than what is left of the deadline: same.
    let (svc, mut handle) = mock::pair::<Request<MeshBody>, Response<String>>();
    let svc = tower::ServiceBuilder::new()
        .layer(TimeoutLayer::call(Some(Duration::from_secs(1))))
        .layer(RetryLayer::new(Some(policy(|_| {}))))
        .service(svc);
    let call = tokio::spawn(svc.oneshot(get(MeshBody::empty())));
    let (_, send) = handle.next_request().await.unwrap();
    let mut resp = status(503);
    resp.headers_mut()
        .insert("retry-after", "2".parse().unwrap());
    send.send_response(resp);
    let resp = call.await.unwrap().unwrap();
    assert_eq!(resp.extensions().get::<Attempts>(), Some(&Attempts(1)));
}

#[tokio::test(start_paused = true)]
async fn grpc_pushback_sets_the_delay_or_stops() {
    let layer = RetryLayer::new(Some(policy(|c| c.on = vec![RetryOn::Unavailable])));
    let (call, mut handle) = spawn(layer.clone(), get(MeshBody::empty()));
    let (_, send) = handle.next_request().await.unwrap();
    let start = Instant::now();
    let mut resp = status(200);
    resp.headers_mut()
        .insert("grpc-status", "14".parse().unwrap());
    resp.headers_mut()
        .insert("grpc-retry-pushback-ms", "300".parse().unwrap());
    send.send_response(resp);
    let (_, send) = handle.next_request().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    send.send_response(status(200));
    assert_eq!(
        call.await.unwrap().unwrap().extensions().get::<Attempts>(),
        Some(&Attempts(2))
    );

    let (call, mut handle) = spawn(layer, get(MeshBody::empty()));
    let (_, send) = handle.next_request().await.unwrap();
    let mut resp = status(200);
    resp.headers_mut()
        .insert("grpc-status", "14".parse().unwrap());
    resp.headers_mut()
        .insert("grpc-retry-pushback-ms", "-1".parse().unwrap());
    send.send_response(resp);
    let resp = call.await.unwrap().unwrap();
    assert_eq!(resp.extensions().get::<Attempts>(), Some(&Attempts(1)));
}
