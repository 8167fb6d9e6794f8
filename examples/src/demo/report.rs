//! The live table: every second, what the callers saw, what each instance
//! saw, the split, the retries and the ejections.
//!
//! Per-service and per-instance figures come from the demo's own
//! measurements ([`super::Recorded`]); retries and ejections from the mesh's
//! instruments, read through the same Prometheus exposition `/metrics`
//! serves (`mesh_client_retries_total`, `mesh_outlier_ejections_total`,
//! `mesh_endpoints`).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesh_tower::metrics::prometheus::Exposition;
use parking_lot::Mutex;

use super::stats::Snapshot;
use super::{Options, Recorded, Summary};

/// How many events the terminal view keeps on screen.
const EVENTS_SHOWN: usize = 8;

/// Timestamped events (phase changes, ejections, returns), shared with the
/// tasks that cause them.
#[derive(Debug, Clone)]
pub struct Events {
    started: tokio::time::Instant,
    list: Arc<Mutex<Vec<(Duration, String)>>>,
}

impl Events {
    /// Records an event now.
    pub fn push(&self, text: String) {
        self.list.lock().push((self.started.elapsed(), text));
    }
}

/// Prints the table; keeps the totals.
pub struct Reporter {
    options: Options,
    recorded: Arc<Recorded>,
    exposition: Exposition,
    ui: SocketAddr,
    metrics: SocketAddr,
    flaky: SocketAddr,
    events: Events,
    events_printed: usize,
    ejections: HashMap<String, u64>,
    ejected: HashSet<SocketAddr>,
    retries: u64,
    total: Summary,
    frames: u64,
}

/// One second, collected.
struct Frame {
    news: Snapshot,
    ui: Snapshot,
    instances: Vec<(SocketAddr, &'static str, Snapshot)>,
    v1: u64,
    v2: u64,
    saved: u64,
    retries: u64,
}

impl Reporter {
    pub(super) fn new(
        options: Options,
        recorded: Arc<Recorded>,
        exposition: Exposition,
        ui: SocketAddr,
        metrics: SocketAddr,
        flaky: SocketAddr,
    ) -> Reporter {
        Reporter {
            options,
            recorded,
            exposition,
            ui,
            metrics,
            flaky,
            events: Events {
                started: tokio::time::Instant::now(),
                list: Arc::default(),
            },
            events_printed: 0,
            ejections: HashMap::new(),
            ejected: HashSet::new(),
            retries: 0,
            total: Summary::default(),
            frames: 0,
        }
    }

    /// The shared event list.
    pub fn events(&self) -> Events {
        self.events.clone()
    }

    /// Collects the last second and prints it.
    pub fn tick(&mut self, elapsed: Duration) {
        let frame = self.collect();
        let text = self.render(&frame, elapsed);
        let mut out = std::io::stdout().lock();
        if self.options.redraw {
            // Clear once, then: home, each line clears its rest, clear below.
            let clear = if self.frames == 0 { "\x1b[2J" } else { "" };
            let _ = write!(out, "{clear}\x1b[H{}\x1b[J", text.replace('\n', "\x1b[K\n"));
        } else {
            let _ = writeln!(out, "{text}");
        }
        let _ = out.flush();
        self.frames += 1;
    }

    /// Collects what is left and prints the summary line.
    pub fn finish(&mut self, elapsed: Duration) -> Summary {
        let _ = self.collect();
        let t = self.total;
        let pct = |n: u64, of: u64| {
            if of == 0 {
                0.0
            } else {
                n as f64 * 100.0 / of as f64
            }
        };
        println!(
            "summary after {:.1}s: {} requests, {} ok ({:.2}%); news-service v1 {} ({:.1}%) / v2 {} ({:.1}%); \
             retries {} (saved {} requests); ejections {}",
            elapsed.as_secs_f64(),
            t.requests,
            t.ok,
            pct(t.ok, t.requests),
            t.v1,
            pct(t.v1, t.v1 + t.v2),
            t.v2,
            pct(t.v2, t.v1 + t.v2),
            t.retries,
            t.saved,
            t.ejections,
        );
        t
    }

    fn collect(&mut self) -> Frame {
        let r = &self.recorded;
        let frame = Frame {
            news: r.news.take(),
            ui: r.ui.take(),
            instances: r
                .instances
                .iter()
                .map(|(addr, version, s)| (*addr, *version, s.take()))
                .collect(),
            v1: r.v1.take(),
            v2: r.v2.take(),
            saved: r.saved.take(),
            retries: 0,
        };
        let text = self.exposition.render().unwrap_or_default();
        let retries = samples(&text, "mesh_client_retries_total")
            .map(|(_, v)| v as u64)
            .sum::<u64>();
        let frame = Frame {
            retries: retries.saturating_sub(self.retries),
            ..frame
        };
        self.retries = retries;

        // Ejections: a counter per endpoint; the gauge says whether any is
        // ejected now.
        let mut new_ejections = HashSet::new();
        for (labels, value) in samples(&text, "mesh_outlier_ejections_total") {
            let Some(endpoint) = label(labels, "mesh_endpoint") else {
                continue;
            };
            let now = value as u64;
            let before = self
                .ejections
                .insert(endpoint.to_string(), now)
                .unwrap_or(0);
            if now > before {
                self.total.ejections += now - before;
                if let Ok(addr) = endpoint.parse::<SocketAddr>() {
                    new_ejections.insert(addr);
                    self.ejected.insert(addr);
                    self.events.push(format!(
                        "{endpoint} ejected by outlier detection (ejection #{now}; \
                         retries went to the other v1 instance)"
                    ));
                }
            }
        }
        let ejected_now = samples(&text, "mesh_endpoints")
            .filter(|(l, _)| {
                label(l, "mesh_service") == Some("news-service")
                    && label(l, "mesh_endpoint_state") == Some("ejected")
            })
            .map(|(_, v)| v)
            .sum::<f64>();
        for (addr, _, snap) in &frame.instances {
            let serving = snap.count >= 3 || ejected_now == 0.0;
            if self.ejected.contains(addr) && !new_ejections.contains(addr) && serving {
                self.ejected.remove(addr);
                self.events.push(format!(
                    "{addr} back in service (probation, then slow start)"
                ));
            }
        }

        let t = &mut self.total;
        t.requests += frame.news.count + frame.ui.count;
        t.ok += frame.news.count - frame.news.errors + frame.ui.count - frame.ui.errors;
        t.v1 += frame.v1;
        t.v2 += frame.v2;
        t.saved += frame.saved;
        t.retries = self.retries;
        frame
    }

    fn render(&mut self, f: &Frame, elapsed: Duration) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "mesh-demo {:>5.1}s  load {} rps  app-ui http://{}/  metrics http://{}/metrics{}",
            elapsed.as_secs_f64(),
            self.options.rps,
            self.ui,
            self.metrics,
            if self.options.redraw {
                "  (Ctrl-C stops)"
            } else {
                ""
            },
        );
        let _ = writeln!(
            s,
            "  {:<32} {:>6} {:>8} {:>8} {:>7} {:>9}  state",
            "callers, through the mesh", "rps", "p50 ms", "p99 ms", "err%", "in-flight"
        );
        row(&mut s, "news-service", &f.news, "");
        row(&mut s, "app-ui", &f.ui, "");
        let _ = writeln!(s, "  instances, every attempt");
        for (addr, version, snap) in &f.instances {
            let name = if *addr == self.flaky {
                format!("{version} {addr} (flaky)")
            } else {
                format!("{version} {addr}")
            };
            let state = if self.ejected.contains(addr) {
                "EJECTED"
            } else {
                "ready"
            };
            row(&mut s, &name, snap, state);
        }
        let share = |a: u64, b: u64| {
            if a + b == 0 {
                0.0
            } else {
                a as f64 * 100.0 / (a + b) as f64
            }
        };
        let t = &self.total;
        let _ = writeln!(
            s,
            "  split      v1 {:>5.1}% / v2 {:>5.1}% this second; v1 {:.1}% / v2 {:.1}% overall (config 90/10)",
            share(f.v1, f.v2),
            share(f.v2, f.v1),
            share(t.v1, t.v2),
            share(t.v2, t.v1),
        );
        let _ = writeln!(
            s,
            "  retries    {} sent, {} saved a failed request; overall {} sent, {} saved",
            f.retries, f.saved, t.retries, t.saved
        );
        let _ = writeln!(s, "  ejections  {} overall", t.ejections);
        let events = self.events.list.lock();
        if self.options.redraw {
            let _ = writeln!(s, "  events");
            for (at, text) in events
                .iter()
                .skip(events.len().saturating_sub(EVENTS_SHOWN))
            {
                let _ = writeln!(s, "    [{:>6.1}s] {text}", at.as_secs_f64());
            }
        } else {
            for (at, text) in events.iter().skip(self.events_printed) {
                let _ = writeln!(s, "  event [{:>6.1}s] {text}", at.as_secs_f64());
            }
        }
        self.events_printed = events.len();
        s
    }
}

fn row(s: &mut String, name: &str, snap: &Snapshot, state: &str) {
    let ms = |d: Option<Duration>| {
        d.map_or_else(|| "-".into(), |d| format!("{:.2}", d.as_secs_f64() * 1e3))
    };
    let err = if snap.count == 0 {
        "-".into()
    } else {
        format!("{:.1}%", snap.errors as f64 * 100.0 / snap.count as f64)
    };
    let _ = writeln!(
        s,
        "  {:<32} {:>6} {:>8} {:>8} {:>7} {:>9}  {state}",
        name,
        snap.count,
        ms(snap.p50),
        ms(snap.p99),
        err,
        snap.in_flight
    );
}

/// The samples of metric `name` in Prometheus text: (labels, value).
fn samples<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    text.lines().filter_map(move |line| {
        let rest = line.strip_prefix(name)?;
        let (labels, value) = if let Some(rest) = rest.strip_prefix('{') {
            let (labels, value) = rest.rsplit_once('}')?;
            (labels, value)
        } else if rest.starts_with(' ') {
            ("", rest)
        } else {
            return None; // another metric with this prefix
        };
        let value = value.split_whitespace().next()?.parse().ok()?;
        Some((labels, value))
    })
}

/// The value of label `key` in `k="v",k2="v2"`.
fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x\n\
        mesh_outlier_ejections_total{mesh_endpoint=\"127.0.0.1:1\",mesh_service=\"news-service\",otel_scope_name=\"mesh-tower\"} 2\n\
        mesh_endpoints{mesh_endpoint_state=\"ejected\",mesh_service=\"news-service\"} 1\n\
        mesh_endpoints_other 5\n\
        mesh_client_retries_total 7\n";

    #[test]
    fn parses_samples_and_labels() {
        let e: Vec<_> = samples(TEXT, "mesh_outlier_ejections_total").collect();
        assert_eq!(e.len(), 1);
        assert_eq!(label(e[0].0, "mesh_endpoint"), Some("127.0.0.1:1"));
        assert_eq!(e[0].1, 2.0);
        let g: Vec<_> = samples(TEXT, "mesh_endpoints").collect();
        assert_eq!(g.len(), 1, "a prefix of another name is not a match");
        assert_eq!(
            samples(TEXT, "mesh_client_retries_total")
                .next()
                .map(|s| s.1),
            Some(7.0)
        );
    }
}
