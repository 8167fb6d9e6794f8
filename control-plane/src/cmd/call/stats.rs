//! What `meshctl call` counts, and the report it prints.
//!
//! Each worker owns a [`Stats`] (no lock shared between workers); at the end
//! they are merged into one and turned into a [`Report`], printed as text or
//! as one JSON object with exactly the keys `requests`, `succeeded`,
//! `failed`, `status`, `endpoints`, `retries` and `latency_ms` (`p50`,
//! `p90`, `p99`, `max`).
//!
//! - A request *succeeded* when the mesh's one verdict
//!   ([`mesh_tower::classify::is_success`]) says so: a non-5xx response with
//!   no failing gRPC status, its body read to the end. Everything else
//!   failed: 5xx responses, errors (timeouts, circuit open, no endpoints,
//!   ...), bodies that broke off.
//! - `status` counts HTTP status codes (`"200"`) and, for requests that got
//!   no response, the error kind ([`mesh_tower::error::ErrorKind::as_str`]:
//!   `"timeout"`, `"circuit_open"`, `"no_endpoints"`, ...).
//! - `endpoints` counts responses by the endpoint that served them (the
//!   [`ServedBy`](mesh_tower::ext::ServedBy) response extension); requests
//!   without a response are not attributed to an endpoint.
//! - `retries` is the sum of `Attempts - 1` over responses.
//! - Latency covers every request, failed ones included, from the moment it
//!   was due (see `--rate`) until its body was read or it failed.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};

use super::histogram::Histogram;

/// A key of the status histogram: an HTTP status, or the kind of error a
/// request without a response ended with. HTTP codes sort first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StatusKey {
    /// An HTTP status code.
    Http(u16),
    /// An error kind (`timeout`, `circuit_open`, ...).
    Error(&'static str),
}

impl std::fmt::Display for StatusKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusKey::Http(code) => write!(f, "{code}"),
            StatusKey::Error(kind) => f.write_str(kind),
        }
    }
}

/// Counts of one worker (or of all, once merged).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    succeeded: u64,
    failed: u64,
    status: HashMap<StatusKey, u64>,
    endpoints: HashMap<SocketAddr, u64>,
    retries: u64,
    latency: Histogram,
}

/// How one request ended, as [`Stats::record`] takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Status code or error kind.
    pub status: StatusKey,
    /// Whether it counts as succeeded.
    pub success: bool,
    /// The endpoint that served the response, if known.
    pub served_by: Option<SocketAddr>,
    /// Attempts the response took, if known (1 = no retry).
    pub attempts: Option<u32>,
}

impl Stats {
    /// Records one finished request.
    pub fn record(&mut self, outcome: Outcome, latency: Duration) {
        if outcome.success {
            self.succeeded += 1;
        } else {
            self.failed += 1;
        }
        *self.status.entry(outcome.status).or_insert(0) += 1;
        if let Some(addr) = outcome.served_by {
            *self.endpoints.entry(addr).or_insert(0) += 1;
        }
        if let Some(n) = outcome.attempts {
            self.retries += u64::from(n.saturating_sub(1));
        }
        self.latency.record(latency);
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Stats) {
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        for (k, v) in &other.status {
            *self.status.entry(*k).or_insert(0) += v;
        }
        for (k, v) in &other.endpoints {
            *self.endpoints.entry(*k).or_insert(0) += v;
        }
        self.retries += other.retries;
        self.latency.merge(&other.latency);
    }

    /// Requests recorded.
    pub fn requests(&self) -> u64 {
        self.succeeded + self.failed
    }

    /// The report of these counts, for a run that took `elapsed`.
    pub fn report(&self, elapsed: Duration) -> Report {
        Report {
            requests: self.requests(),
            succeeded: self.succeeded,
            failed: self.failed,
            status: self.status.iter().map(|(k, v)| (*k, *v)).collect(),
            endpoints: self.endpoints.iter().map(|(k, v)| (*k, *v)).collect(),
            retries: self.retries,
            p50: self.latency.quantile(0.50),
            p90: self.latency.quantile(0.90),
            p99: self.latency.quantile(0.99),
            max: self.latency.max(),
            elapsed,
        }
    }
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Requests sent (and finished).
    pub requests: u64,
    /// Requests that succeeded.
    pub succeeded: u64,
    /// Requests that failed.
    pub failed: u64,
    /// Status code or error kind -> count.
    pub status: BTreeMap<StatusKey, u64>,
    /// Serving endpoint -> responses.
    pub endpoints: BTreeMap<SocketAddr, u64>,
    /// Retries (sum of attempts - 1).
    pub retries: u64,
    /// Latency median.
    pub p50: Duration,
    /// Latency 90th percentile.
    pub p90: Duration,
    /// Latency 99th percentile.
    pub p99: Duration,
    /// Largest latency.
    pub max: Duration,
    /// Wall time of the run (text output only).
    pub elapsed: Duration,
}

/// Milliseconds with microsecond precision.
fn ms(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

impl Report {
    /// The JSON object: exactly `requests`, `succeeded`, `failed`, `status`,
    /// `endpoints`, `retries`, `latency_ms` {`p50`, `p90`, `p99`, `max`}.
    pub fn to_json(&self) -> Value {
        let status: serde_json::Map<String, Value> = self
            .status
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let endpoints: serde_json::Map<String, Value> = self
            .endpoints
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        json!({
            "requests": self.requests,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "status": status,
            "endpoints": endpoints,
            "retries": self.retries,
            "latency_ms": {
                "p50": ms(self.p50),
                "p90": ms(self.p90),
                "p99": ms(self.p99),
                "max": ms(self.max),
            },
        })
    }

    /// The text report, one line per topic.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.requests as f64 / secs
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "requests:   {} in {secs:.2}s ({rate:.1}/s), {} succeeded, {} failed",
            self.requests, self.succeeded, self.failed
        );
        let _ = writeln!(out, "status:     {}", pairs(&self.status));
        let _ = writeln!(out, "endpoints:  {}", pairs(&self.endpoints));
        let _ = writeln!(out, "retries:    {}", self.retries);
        let _ = writeln!(
            out,
            "latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.max)
        );
        out
    }
}

/// `k=v  k=v`, or `-` when empty.
fn pairs<K: std::fmt::Display>(map: &BTreeMap<K, u64>) -> String {
    if map.is_empty() {
        return "-".to_string();
    }
    let mut out = String::new();
    for (k, v) in map {
        if !out.is_empty() {
            out.push_str("  ");
        }
        let _ = write!(out, "{k}={v}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn ok(port: u16, attempts: u32) -> Outcome {
        Outcome {
            status: StatusKey::Http(200),
            success: true,
            served_by: Some(addr(port)),
            attempts: Some(attempts),
        }
    }

    fn sample() -> Stats {
        let mut a = Stats::default();
        let mut b = Stats::default();
        a.record(ok(8081, 1), Duration::from_micros(1500));
        a.record(ok(8082, 3), Duration::from_micros(2500));
        b.record(ok(8081, 2), Duration::from_micros(100));
        b.record(
            Outcome {
                status: StatusKey::Http(503),
                success: false,
                served_by: Some(addr(8082)),
                attempts: Some(3),
            },
            Duration::from_micros(200),
        );
        b.record(
            Outcome {
                status: StatusKey::Error("circuit_open"),
                success: false,
                served_by: None,
                attempts: None,
            },
            Duration::from_micros(10),
        );
        a.merge(&b);
        a
    }

    #[test]
    fn json_has_exactly_the_contract_keys() {
        let report = sample().report(Duration::from_secs(1));
        let expected = json!({
            "requests": 5,
            "succeeded": 3,
            "failed": 2,
            "status": {"200": 3, "503": 1, "circuit_open": 1},
            "endpoints": {"127.0.0.1:8081": 2, "127.0.0.1:8082": 2},
            "retries": 5,
            "latency_ms": {"p50": 0.2, "p90": 2.5, "p99": 2.5, "max": 2.5},
        });
        // 1500 µs lies in a 4 µs wide bucket: not asserted via p50 here.
        assert_eq!(report.to_json(), expected);
    }

    #[test]
    fn status_keys_sort_codes_before_errors() {
        let report = sample().report(Duration::from_secs(1));
        let keys: Vec<String> = report.status.keys().map(|k| k.to_string()).collect();
        assert_eq!(keys, ["200", "503", "circuit_open"]);
    }

    #[test]
    fn text_report() {
        let text = sample().report(Duration::from_millis(500)).to_text();
        assert_eq!(
            text,
            "requests:   5 in 0.50s (10.0/s), 3 succeeded, 2 failed\n\
             status:     200=3  503=1  circuit_open=1\n\
             endpoints:  127.0.0.1:8081=2  127.0.0.1:8082=2\n\
             retries:    5\n\
             latency ms: p50 0.200  p90 2.500  p99 2.500  max 2.500\n"
        );
    }

    #[test]
    fn empty_run() {
        let report = Stats::default().report(Duration::ZERO);
        assert_eq!(report.requests, 0);
        assert!(report.to_text().contains("status:     -"));
        assert_eq!(report.to_json()["latency_ms"]["max"], json!(0.0));
    }
}
