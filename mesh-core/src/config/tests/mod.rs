//! Tests of parsing, validation, environment and rendering, end to end.

mod env;
mod formats;
mod health;
mod routes;
mod rules;

use super::*;

const EXAMPLE: &str = include_str!("../../../../examples/mesh.yaml");

fn yaml(text: &str) -> Result<MeshConfig, ConfigErrors> {
    parse_str(text, Format::Yaml, "mesh.yaml")
}

/// Asserts that `text` fails with an error at `path`, on `line`, whose
/// message contains `fragment`.
#[track_caller]
fn expect_err(text: &str, path: &str, line: u32, fragment: &str) -> ConfigErrors {
    let errs = match yaml(text) {
        Ok(cfg) => panic!("expected an error at {path}, parsed {cfg:?}"),
        Err(e) => e,
    };
    let Some(err) = errs.at(path) else {
        panic!("no error at `{path}`; got:\n{errs}");
    };
    assert_eq!(
        err.line,
        Some(line),
        "line of `{path}`; all errors:\n{errs}"
    );
    assert!(
        err.message.contains(fragment),
        "message of `{path}` lacks `{fragment}`:\n{errs}"
    );
    errs
}

/// A config with one service `a` whose body is `body` (indented 4).
fn svc(body: &str) -> String {
    let mut s = String::from("services:\n  a:\n");
    for l in body.lines() {
        s.push_str("    ");
        s.push_str(l);
        s.push('\n');
    }
    s
}
