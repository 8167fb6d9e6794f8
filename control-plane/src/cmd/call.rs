//! `meshctl call URL [--requests N | --duration D] [--concurrency C]
//! [--rate R] [-X METHOD] [-H 'k: v']... [--json]`.
//!
//! Sends traffic through the mesh client, exactly as a service using
//! `mesh_tower::Mesh` would: the URL's host is the mesh service name
//! (`http://news-service/path`), resolved, balanced, retried and timed out
//! by the config of `MESH_CONFIG` and the environment
//! (`mesh_tower::Mesh::from_env`). Then it prints what happened: requests,
//! succeeded, failed, a status histogram, per-endpoint counts, retries and
//! latency percentiles (see [`stats`] for what each counts, [`drive`] for
//! the closed and open loop, [`histogram`] for the percentiles).
//!
//! Exit codes: 0 when every request succeeded, 1 when some failed (the
//! report is printed all the same), 2 on usage, config or runtime errors.

pub mod drive;
pub mod histogram;
pub mod stats;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use http_body_util::Full;
use mesh_core::config::parse_duration;
use mesh_tower::BoxError;
use tower::Service;

use super::{EXIT_ERROR, EXIT_INVALID};
use drive::{Control, Plan, Until};

/// Arguments of `meshctl call`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// `http://SERVICE/path?query`: the host is the mesh service name.
    pub url: String,
    /// Send this many requests (default 1).
    #[arg(short = 'n', long, conflicts_with = "duration", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,
    /// Send requests for this long (`30s`, `2m`, `500ms`).
    #[arg(long, value_parser = duration_arg)]
    pub duration: Option<Duration>,
    /// Requests in flight at most (workers).
    #[arg(short = 'c', long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub concurrency: u64,
    /// Open loop: this many requests per second in total, however slow the
    /// answers (latency then counts from when a request was due).
    #[arg(long, value_parser = rate_arg)]
    pub rate: Option<f64>,
    /// HTTP method.
    #[arg(short = 'X', long = "request", default_value = "GET")]
    pub method: String,
    /// A request header, `name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Print one JSON object: requests, succeeded, failed, status,
    /// endpoints, retries, latency_ms {p50, p90, p99, max}.
    #[arg(long)]
    pub json: bool,
}

fn duration_arg(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be more than 0".to_string());
    }
    Ok(d)
}

fn rate_arg(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "`{text}` is not a rate: a positive number of requests per second"
        )),
    }
}

/// A request the mesh can send: the service and the whole plan.
#[derive(Debug, Clone)]
pub struct Target {
    /// The mesh service name (the URL's host).
    pub service: String,
    /// What to send.
    pub plan: Plan,
}

/// Why the arguments make no request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgError {
    /// The URL does not parse or lacks a host.
    #[error("`{url}` is not a mesh URL: {reason} (expected http://SERVICE/path)")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The method is not a valid HTTP method.
    #[error("`{0}` is not an HTTP method")]
    Method(String),
    /// A header is not `name: value` or has invalid characters.
    #[error("header `{0}`: expected `name: value` with a valid name and value")]
    Header(String),
}

impl Args {
    /// The service and plan these arguments describe.
    pub fn target(&self) -> Result<Target, ArgError> {
        let url_error = |reason: &str| ArgError::Url {
            url: self.url.clone(),
            reason: reason.to_string(),
        };
        let uri: Uri = self
            .url
            .parse()
            .map_err(|e: http::uri::InvalidUri| url_error(&e.to_string()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => return Err(url_error(&format!("scheme `{other}` (only http)"))),
            None => return Err(url_error("no scheme")),
        }
        let service = match uri.host() {
            Some(h) if !h.is_empty() => h.to_string(),
            _ => return Err(url_error("no service name")),
        };
        let method = Method::from_bytes(self.method.as_bytes())
            .map_err(|_| ArgError::Method(self.method.clone()))?;
        let mut headers = HeaderMap::new();
        for h in &self.headers {
            let (name, value) = parse_header(h).ok_or_else(|| ArgError::Header(h.clone()))?;
            headers.append(name, value);
        }
        let until = match (self.requests, self.duration) {
            (_, Some(d)) => Until::Duration(d),
            (Some(n), None) => Until::Requests(n),
            (None, None) => Until::Requests(1),
        };
        Ok(Target {
            service,
            plan: Plan {
                method,
                uri,
                headers,
                until,
                concurrency: usize::try_from(self.concurrency).unwrap_or(usize::MAX),
                rate: self.rate,
            },
        })
    }
}

/// Runs the command: 0 when every request succeeded, 1 when some failed,
/// 2 on usage, environment or config errors.
pub fn run(args: Args) -> ExitCode {
    let target = match args.target() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("meshctl: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let env = match super::mesh_env() {
        Ok(env) => env,
        Err(msg) => {
            eprintln!("meshctl: {msg}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let runtime = match super::runtime(true) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async {
        // As `Mesh::from_env`, from an environment read without panicking
        // on variables that are not UTF-8.
        let mesh = match mesh_tower::Mesh::builder().env(&env).build() {
            Ok(mesh) => mesh,
            Err(e) => {
                eprintln!("meshctl: {}", crate::api::error_chain(&e));
                return ExitCode::from(EXIT_ERROR);
            }
        };
        let client = match mesh.try_client(&target.service) {
            Ok(client) => client,
            Err(e) => {
                eprintln!("meshctl: {}", crate::api::error_chain(&e));
                return ExitCode::from(EXIT_ERROR);
            }
        };
        call_with(client, target.plan, args.json).await
    })
}

/// Runs `plan` through `service` and prints the report (text, or JSON with
/// `json`) on stdout, with a progress line on stderr when stderr is a
/// terminal. The first Ctrl-C stops sending (requests in flight finish), a
/// second one drops those too; the report covers what finished.
pub async fn call_with<S, B>(service: S, plan: Plan, json: bool) -> ExitCode
where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<B>, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let control = Arc::new(Control::new());
    let signals = tokio::spawn(interrupts(control.clone()));
    let progress = std::io::stderr()
        .is_terminal()
        .then(|| tokio::spawn(progress(control.clone(), plan.until)));
    let (stats, elapsed) = drive::drive(service, Arc::new(plan), control).await;
    signals.abort();
    if let Some(p) = progress {
        p.abort();
        eprint!("\r\x1b[K");
    }
    let report = stats.report(elapsed);
    let mut out = std::io::stdout().lock();
    let written = if json {
        writeln!(out, "{}", report.to_json())
    } else {
        write!(out, "{}", report.to_text())
    };
    if let Err(e) = written.and_then(|()| out.flush()) {
        eprintln!("meshctl: cannot write the report: {e}");
        return ExitCode::from(EXIT_ERROR);
    }
    if report.failed == 0 && report.requests > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INVALID)
    }
}

/// First Ctrl-C: stop; second: abort.
async fn interrupts(control: Arc<Control>) {
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    control.stop();
    if tokio::signal::ctrl_c().await.is_ok() {
        control.abort();
    }
}

/// Rewrites one stderr line twice a second: done, failed, rate, elapsed.
async fn progress(control: Arc<Control>, until: Until) {
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.tick().await;
    loop {
        tick.tick().await;
        let (done, failed) = control.progress();
        let secs = start.elapsed().as_secs_f64();
        let of = match until {
            Until::Requests(n) => format!("{done}/{n} requests"),
            Until::Duration(d) => {
                format!("{done} requests ({secs:.0}s of {:.0}s)", d.as_secs_f64())
            }
        };
        eprint!(
            "\r\x1b[K{of}, {failed} failed, {:.0}/s",
            done as f64 / secs.max(0.001)
        );
    }
}

/// `name: value` (whitespace around the value trimmed).
fn parse_header(text: &str) -> Option<(HeaderName, HeaderValue)> {
    let (name, value) = text.split_once(':')?;
    let name = HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
    let value = HeaderValue::from_str(value.trim()).ok()?;
    Some((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        Cli::try_parse_from(std::iter::once("call").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn full_command_line() {
        let args = parse(&[
            "http://news-service/api/news?x=1",
            "--duration",
            "30s",
            "-c",
            "8",
            "--rate",
            "250",
            "-X",
            "POST",
            "-H",
            "x-user-id: 42",
            "-H",
            "x-canary:true",
            "--json",
        ])
        .unwrap();
        assert!(args.json);
        let t = args.target().unwrap();
        assert_eq!(t.service, "news-service");
        assert_eq!(
            t.plan.uri.path_and_query().unwrap().as_str(),
            "/api/news?x=1"
        );
        assert_eq!(t.plan.until, Until::Duration(Duration::from_secs(30)));
        assert_eq!(t.plan.concurrency, 8);
        assert_eq!(t.plan.rate, Some(250.0));
        assert_eq!(t.plan.method, Method::POST);
        assert_eq!(t.plan.headers["x-user-id"], "42");
        assert_eq!(t.plan.headers["x-canary"], "true");
    }

    #[test]
    fn defaults_one_request_one_worker_get() {
        let t = parse(&["http://news-service/"]).unwrap().target().unwrap();
        assert_eq!(t.plan.until, Until::Requests(1));
        assert_eq!(t.plan.concurrency, 1);
        assert_eq!(t.plan.rate, None);
        assert_eq!(t.plan.method, Method::GET);
        let t = parse(&["http://a/", "-n", "500"])
            .unwrap()
            .target()
            .unwrap();
        assert_eq!(t.plan.until, Until::Requests(500));
    }

    #[test]
    fn usage_errors() {
        assert!(parse(&["http://a/", "-n", "5", "--duration", "1s"]).is_err());
        assert!(parse(&["http://a/", "-n", "0"]).is_err());
        assert!(parse(&["http://a/", "-c", "0"]).is_err());
        assert!(parse(&["http://a/", "--rate", "0"]).is_err());
        assert!(parse(&["http://a/", "--rate", "inf"]).is_err());
        assert!(parse(&["http://a/", "--duration", "0s"]).is_err());
        assert!(parse(&["http://a/", "--duration", "soon"]).is_err());
    }

    #[test]
    fn bad_targets() {
        let target = |argv: &[&str]| parse(argv).unwrap().target();
        assert!(matches!(
            target(&["news-service/x"]),
            Err(ArgError::Url { .. })
        ));
        assert!(matches!(target(&["https://a/"]), Err(ArgError::Url { .. })));
        assert!(matches!(
            target(&["http://a b/"]),
            Err(ArgError::Url { .. })
        ));
        assert_eq!(
            target(&["http://a/", "-X", "GE T"]).unwrap_err(),
            ArgError::Method("GE T".into())
        );
        assert_eq!(
            target(&["http://a/", "-H", "no-colon"]).unwrap_err(),
            ArgError::Header("no-colon".into())
        );
        assert!(target(&["http://a/", "-H", "bad name: v"]).is_err());
    }
}
