//! `--endpoints N`: the memory the mesh adds with N endpoints configured
//! (N/10 services x 10 endpoints), discovery loaded and one request sent
//! per service, measured as the growth of this process's resident set.
//!
//! The upstream runs in a child process (this binary with `--serve`), so
//! the server side of the connections is not counted. It listens on
//! `0.0.0.0`, so that the 1,000 distinct loopback addresses
//! `127.0.a.b:port` all reach it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use mesh_core::config::{Format, parse_str};
use mesh_tower::Mesh;
use mesh_tower::metrics::{Metrics, prometheus};
use opentelemetry::metrics::MeterProvider;
use serde_json::json;
use tower::{Service, ServiceExt};

use super::procfs::status_kb;

/// Kills the child server on drop.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The config: `services` services named `svc-NNN`, 10 endpoints each.
fn config_yaml(services: usize, port: u16, h2: bool) -> String {
    let mut yaml = String::from("services:\n");
    for s in 0..services {
        yaml.push_str(&format!(
            "  svc-{s:03}:\n    protocol: {}\n    load_balancer: least_request\n    timeout: 2s\n    retry: {{ attempts: 2, per_try_timeout: 1s, on: [connect-failure, reset, 5xx] }}\n    routes: [{{ name: all, match: {{ path_prefix: / }} }}]\n    endpoints:\n",
            if h2 { "http2" } else { "http" }
        ));
        for e in 0..10 {
            let i = s * 10 + e;
            yaml.push_str(&format!(
                "      - {{ address: 127.0.{}.{}:{port} }}\n",
                1 + i / 200,
                1 + i % 200
            ));
        }
    }
    yaml
}

struct Sample {
    rss: u64,
    anon: u64,
}

fn sample() -> Sample {
    Sample {
        rss: status_kb(None, "VmRSS"),
        anon: status_kb(None, "RssAnon"),
    }
}

fn mb(bytes: i64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// Runs the measurement; prints a table (or JSON) and returns the added
/// RSS in bytes after one request per service.
pub async fn run(endpoints: usize, json_out: bool) -> Result<i64, mesh_tower::BoxError> {
    let services = endpoints.div_ceil(10).max(1);
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--serve", "0.0.0.0"])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("child server has no stdout")?;
    let guard = ChildGuard(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let port: u16 = line.trim().parse()?;

    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = sample();

    let config = parse_str(&config_yaml(services, port, false), Format::Yaml, "bench")?;
    let (provider, exposition) = prometheus::pipeline(Some("mesh-bench"))?;
    let metrics = Metrics::new(&provider.meter(mesh_tower::metrics::SCOPE));
    let mesh = Mesh::builder()
        .config(config)
        .metrics(metrics)
        .local_service("mesh-bench")
        .build()?;
    let built = sample();

    let clients: Vec<_> = (0..services)
        .map(|s| mesh.client(&format!("svc-{s:03}")))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let discovered = sample();

    let mut ok = 0usize;
    for (s, client) in clients.iter().enumerate() {
        let req = http::Request::get(format!("http://svc-{s:03}/")).body(Empty::<Bytes>::new())?;
        let mut client = client.clone();
        let resp = ServiceExt::<http::Request<Empty<Bytes>>>::ready(&mut client)
            .await?
            .call(req)
            .await?;
        if resp.status() == http::StatusCode::OK {
            ok += 1;
        }
        resp.into_body().collect().await?;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let used = sample();
    let series = exposition
        .render()?
        .lines()
        .filter(|l| l.starts_with("http_client_request_duration_seconds_count"))
        .count();

    let d = |s: &Sample| {
        (
            s.rss as i64 - before.rss as i64,
            s.anon as i64 - before.anon as i64,
        )
    };
    let (b, d_, u) = (d(&built), d(&discovered), d(&used));
    if json_out {
        let v = json!({"endpoints": {
            "services": services, "endpoints": services * 10, "ok_requests": ok,
            "rss_before_bytes": before.rss,
            "added_rss_bytes": {"built": b.0, "discovered": d_.0, "one_request_each": u.0},
            "added_anon_bytes": {"built": b.1, "discovered": d_.1, "one_request_each": u.1},
            "target_bytes": 10 * 1_048_576
        }});
        println!("{v}");
    } else {
        println!(
            "mesh memory: {services} services x 10 endpoints = {} endpoints (RSS before: {:.1} MB)",
            services * 10,
            mb(before.rss as i64)
        );
        println!("{:<44} {:>12} {:>12}", "stage", "+VmRSS MB", "+RssAnon MB");
        for (name, (r, a)) in [
            ("Mesh built (config parsed, Prometheus)", b),
            ("+ a client per service, discovery loaded", d_),
            (&*format!("+ one request per service ({ok} ok)"), u),
        ] {
            println!("{name:<44} {:>12.2} {:>12.2}", mb(r), mb(a));
        }
        println!(
            "per endpoint (last line): {:.0} bytes; target <= 10 MB: {}; {series} duration series recorded",
            u.0 as f64 / (services * 10) as f64,
            if u.0 <= 10 * 1_048_576 {
                "met"
            } else {
                "MISSED"
            }
        );
    }
    drop(clients);
    drop(mesh);
    drop(guard);
    Ok(u.0)
}
