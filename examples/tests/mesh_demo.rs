//! `mesh-demo --duration 5s` runs by itself, exits 0, and its output shows
//! the split (traffic on v1 and v2) and the resilience (retries or
//! ejections).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

/// The number after `key` in `text` (e.g. `v1 431` -> 431).
fn number_after(text: &str, key: &str) -> u64 {
    let rest = &text[text
        .find(key)
        .unwrap_or_else(|| panic!("no `{key}` in {text}"))
        + key.len()..];
    rest.trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after `{key}` in {text}"))
}

#[test]
fn runs_for_its_duration_and_shows_split_and_resilience() {
    let mut cmd = common::command(env!("CARGO_BIN_EXE_mesh-demo"));
    cmd.args(["--duration", "5s", "--seed", "42"]);
    let (status, out) = common::run_bounded(cmd, Duration::from_secs(60));
    assert!(status.success(), "{status}\n{out}");

    // A live table every second (plain lines: stdout is not a terminal).
    assert!(
        out.matches("callers, through the mesh").count() >= 2,
        "{out}"
    );
    assert!(!out.contains('\x1b'), "no terminal escapes in plain mode");

    let summary = out
        .lines()
        .find(|l| l.starts_with("summary"))
        .unwrap_or_else(|| panic!("no summary in {out}"));
    let requests = number_after(summary, "s:");
    let ok = number_after(summary, "requests,");
    let v1 = number_after(summary, "v1");
    let v2 = number_after(summary, "v2");
    let retries = number_after(summary, "retries");
    let ejections = number_after(summary, "ejections");
    assert!(requests > 0 && ok > 0, "{summary}");
    assert!(
        ok * 100 >= requests * 95,
        "retries keep callers whole: {summary}"
    );
    assert!(v1 > 0 && v2 > 0, "both versions got traffic: {summary}");
    assert!(v1 > v2, "the 90/10 split favours v1: {summary}");
    assert!(retries + ejections > 0, "a retry or an ejection: {summary}");
}
