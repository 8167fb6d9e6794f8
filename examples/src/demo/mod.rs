//! `mesh-demo`: the whole mesh on one machine, in one command.
//!
//! In one process: three `news-service` instances (v1 twice, one of them
//! flaky; v2 once), `app-ui` calling news-service through the mesh, and a
//! steady load loop calling both through a [`Mesh`] built from the
//! [embedded config](CONFIG): a 90/10 v1/v2 split, retries (3 attempts, a
//! per-try timeout) and outlier detection (3 consecutive failures eject for
//! 5 s, then a slow start).
//!
//! The flaky v1 instance fails 40% of its requests (and never answers 2%)
//! for 15 s, then is healthy for 15 s, and so on, from the start: within
//! seconds retries save the failed requests (sent to the other v1
//! instance), the instance is ejected, and later comes back.
//!
//! Every second the reporter prints what the callers saw (per service, from
//! the load loop), what each instance saw (per endpoint, retries included,
//! measured in the instance), the split, the retries (from the mesh's
//! `mesh.client.retries`) and the ejections (from `mesh.outlier.ejections`
//! and `mesh.endpoints`, read from the mesh's own Prometheus exposition,
//! also served at `/metrics`).

mod report;
pub mod stats;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use http_body_util::{BodyExt, Empty};
use mesh_core::config::{Format, parse_str};
use mesh_tower::ext::Attempts;
use mesh_tower::metrics::prometheus;
use mesh_tower::metrics::{Metrics, SCOPE};
use mesh_tower::server::ServerLayer;
use mesh_tower::{BoxError, Mesh, MeshClient};
use opentelemetry::metrics::MeterProvider;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::faults::Faults;
use crate::news::{self, Instance};
use crate::ui;
use report::Reporter;
use stats::{Counter, Series};

/// The demo's mesh config; `{v1a}`, `{v1b}`, `{v2}` and `{ui}` are the
/// instances' addresses, known once they listen.
pub const CONFIG: &str = r#"
services:
  news-service:
    endpoints:
      - { address: "{v1a}", labels: { version: v1 } }
      - { address: "{v1b}", labels: { version: v1 } }   # the flaky one
      - { address: "{v2}", labels: { version: v2 } }
    subsets: { v1: { version: v1 }, v2: { version: v2 } }
    load_balancer: least_request
    timeout: 2s
    retry:
      attempts: 3
      per_try_timeout: 250ms
      on: [connect-failure, reset, 5xx]
      backoff: { base: 5ms, max: 50ms }
      budget: { ratio: 0.5, min_per_second: 20 }
    outlier_detection:
      consecutive_failures: 3
      interval: 2s
      base_ejection: 5s
      max_ejection: 15s
      max_ejected_percent: 50
      slow_start: 5s
    routes:
      - match: { path_prefix: / }
        split: { v1: 90, v2: 10 }
  app-ui:
    endpoints:
      - { address: "{ui}" }
    timeout: 3s
"#;

/// How the demo runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Stop after this long (`None`: at Ctrl-C).
    pub duration: Option<Duration>,
    /// Requests per second of the load loop.
    pub rps: u32,
    /// Failure rate of the flaky instance while it is flaky.
    pub fail_rate: f64,
    /// Seed of the fault decisions.
    pub seed: u64,
    /// Redraw the table in place (a terminal) instead of printing lines.
    pub redraw: bool,
}

/// How long the flaky instance is flaky, then healthy, in turn.
const FLAKY_PHASE: Duration = Duration::from_secs(15);
/// Hang rate of the flaky instance while it is flaky.
const HANG_RATE: f64 = 0.02;
/// Most requests of the load loop in flight at once.
const MAX_IN_FLIGHT: usize = 512;

/// What the load loop and the instances record; read by the reporter.
#[derive(Debug, Default)]
pub struct Recorded {
    /// news-service as the load loop sees it (after retries).
    pub news: Series,
    /// app-ui as the load loop sees it.
    pub ui: Series,
    /// Per news instance, as it sees its requests (attempts), in
    /// [`Recorded::instances`] order.
    pub instances: Vec<(SocketAddr, &'static str, Series)>,
    /// news-service responses served by v1 / by v2.
    pub v1: Counter,
    /// See `v1`.
    pub v2: Counter,
    /// Successful calls that took more than one attempt.
    pub saved: Counter,
}

/// The demo's result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Calls made by the load loop.
    pub requests: u64,
    /// Of which succeeded.
    pub ok: u64,
    /// news-service responses by v1.
    pub v1: u64,
    /// news-service responses by v2.
    pub v2: u64,
    /// Retries sent by the mesh.
    pub retries: u64,
    /// Successful calls that needed a retry.
    pub saved: u64,
    /// Outlier ejections.
    pub ejections: u64,
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A listener could not be bound.
    #[error("binding 127.0.0.1:0")]
    Bind(#[source] std::io::Error),
    /// The embedded config is invalid (a bug).
    #[error("the demo config: {0}")]
    Config(String),
    /// The metrics pipeline or the mesh could not be set up.
    #[error("setting up the mesh")]
    Mesh(#[source] BoxError),
}

async fn bind() -> Result<(TcpListener, SocketAddr), DemoError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(DemoError::Bind)?;
    let addr = listener.local_addr().map_err(DemoError::Bind)?;
    Ok((listener, addr))
}

/// Runs the demo until `options.duration` or Ctrl-C; prints to stdout.
pub async fn run(options: Options) -> Result<Summary, DemoError> {
    let (l_v1a, v1a) = bind().await?;
    let (l_v1b, v1b) = bind().await?;
    let (l_v2, v2) = bind().await?;
    let (l_ui, ui_addr) = bind().await?;

    let text = CONFIG
        .replace("{v1a}", &v1a.to_string())
        .replace("{v1b}", &v1b.to_string())
        .replace("{v2}", &v2.to_string())
        .replace("{ui}", &ui_addr.to_string());
    let config = parse_str(&text, Format::Yaml, "mesh-demo.yaml")
        .map_err(|e| DemoError::Config(e.to_string()))?;

    // One OpenTelemetry pipeline, read as Prometheus text: by the reporter,
    // and at /metrics for curl.
    let (provider, exposition) =
        prometheus::pipeline(Some("mesh-demo")).map_err(|e| DemoError::Mesh(e.into()))?;
    let metrics = Metrics::new(&provider.meter(SCOPE));
    let (l_metrics, metrics_addr) = bind().await?;
    let metrics_server =
        prometheus::serve(l_metrics, exposition.clone()).map_err(|e| DemoError::Mesh(e.into()))?;

    let mesh = Mesh::builder()
        .config(config)
        .metrics(metrics.clone())
        .local_service("mesh-demo")
        .build()
        .map_err(|e| DemoError::Mesh(e.into()))?;

    let flaky = Arc::new(Faults::new(options.seed));
    let recorded = Arc::new(Recorded {
        instances: vec![
            (v1a, "v1", Series::default()),
            (v1b, "v1", Series::default()),
            (v2, "v2", Series::default()),
        ],
        ..Recorded::default()
    });

    let mut servers = JoinSet::new();
    for (index, (listener, addr, version)) in
        [(l_v1a, v1a, "v1"), (l_v1b, v1b, "v1"), (l_v2, v2, "v2")]
            .into_iter()
            .enumerate()
    {
        let faults = if addr == v1b {
            flaky.clone()
        } else {
            Arc::new(Faults::new(options.seed.wrapping_add(index as u64)))
        };
        let app = news::router(Instance {
            version: version.into(),
            address: addr,
            faults,
        })
        .layer(ServerLayer::new(
            metrics.clone(),
            metrics.service("news-service"),
        ));
        let app = measured(app, recorded.clone(), index);
        servers.spawn(async move { axum::serve(listener, app).await });
    }
    let app = ui::router(mesh.client("news-service"))
        .layer(ServerLayer::new(metrics.clone(), metrics.service("app-ui")));
    servers.spawn(async move { axum::serve(l_ui, app).await });

    let started = tokio::time::Instant::now();
    let mut reporter = Reporter::new(
        options.clone(),
        recorded.clone(),
        exposition.clone(),
        ui_addr,
        metrics_addr,
        v1b,
    );
    let mut tasks = JoinSet::new();
    tasks.spawn(flaky_schedule(flaky, options.fail_rate, reporter.events()));
    tasks.spawn(load(
        mesh.client("news-service"),
        mesh.client("app-ui"),
        options.rps,
        recorded.clone(),
    ));

    let stop = async {
        match options.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stop);
    // Listening from here on: a Ctrl-C during a redraw is not lost.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut tick =
        tokio::time::interval_at(started + Duration::from_secs(1), Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = &mut ctrl_c => break,
            _ = tick.tick() => reporter.tick(started.elapsed()),
        }
    }

    // Stop the load first, then everything else.
    tasks.shutdown().await;
    let summary = reporter.finish(started.elapsed());
    servers.shutdown().await;
    metrics_server.shutdown().await;
    let _ = provider.shutdown();
    Ok(summary)
}

/// Wraps an instance's app: every request it sees is measured in
/// `recorded.instances[index]` (a hang shows as in flight).
fn measured(app: Router, recorded: Arc<Recorded>, index: usize) -> Router {
    app.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let recorded = recorded.clone();
            async move {
                let series = recorded.instances.get(index).map(|(_, _, s)| s);
                let guard = series.map(Series::start);
                let response = next.run(req).await;
                if let Some(g) = guard {
                    g.finish(response.status().is_success());
                }
                response
            }
        },
    ))
}

/// Makes the flaky instance fail `fail_rate` of its requests for
/// [`FLAKY_PHASE`], then heal for as long, in turn, from the start.
async fn flaky_schedule(faults: Arc<Faults>, fail_rate: f64, events: report::Events) {
    let mut flaky = false;
    loop {
        flaky = !flaky;
        if flaky {
            faults.set_fail_rate(fail_rate);
            faults.set_hang_rate(HANG_RATE);
            events.push(format!(
                "flaky v1 instance starts failing {:.0}% (and hanging {:.0}%)",
                fail_rate * 100.0,
                HANG_RATE * 100.0
            ));
        } else {
            faults.set_fail_rate(0.0);
            faults.set_hang_rate(0.0);
            events.push("flaky v1 instance recovers".into());
        }
        tokio::time::sleep(FLAKY_PHASE).await;
    }
}

/// The steady load: `rps` calls a second, one in ten to app-ui's
/// `/api/news`, the others to news-service's `/news`, each through the mesh.
async fn load(news: MeshClient, ui: MeshClient, rps: u32, recorded: Arc<Recorded>) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut calls = JoinSet::new();
    let period = Duration::from_secs(1) / rps.max(1);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in 0u64.. {
        tick.tick().await;
        while calls.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue; // saturated: skip this tick rather than queue
        };
        let to_ui = n % 10 == 9;
        let client = if to_ui { ui.clone() } else { news.clone() };
        let recorded = recorded.clone();
        calls.spawn(async move {
            let _permit = permit;
            call(client, to_ui, &recorded).await;
        });
    }
}

/// One call, recorded.
async fn call(client: MeshClient, to_ui: bool, recorded: &Recorded) {
    let (series, uri) = if to_ui {
        (&recorded.ui, "http://app-ui/api/news")
    } else {
        (&recorded.news, "http://news-service/news")
    };
    let in_flight = series.start();
    let Ok(request) = http::Request::get(uri).body(Empty::<bytes::Bytes>::new()) else {
        return;
    };
    let response = match client.oneshot(request).await {
        Ok(r) => r,
        Err(_) => return in_flight.finish(false),
    };
    let ok = response.status().is_success();
    let attempts = response.extensions().get::<Attempts>().map_or(1, |a| a.0);
    let version = response
        .headers()
        .get(news::VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Read the whole body: a call is done when its answer is.
    let body_ok = response.into_body().collect().await.is_ok();
    in_flight.finish(ok && body_ok);
    if ok && body_ok {
        if attempts > 1 {
            recorded.saved.inc();
        }
        match version.as_deref() {
            Some("v1") => recorded.v1.inc(),
            Some("v2") => recorded.v2.inc(),
            _ => {}
        }
    }
}
