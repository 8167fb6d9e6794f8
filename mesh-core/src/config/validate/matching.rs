//! Rules on request matchers: paths, methods, header names, regexes.

use super::super::error::ConfigErrorKind as K;
use super::super::model::{HeaderValueMatch, PathMatch, RouteMatch};
use super::super::tree::Path;
use super::Checker;
use crate::route::matcher::compile_full_match;

pub(super) fn check_match(c: &mut Checker, p: &Path, m: &RouteMatch) {
    match &m.path {
        Some(PathMatch::Exact(s)) if !s.starts_with('/') => {
            c.err(
                K::Invalid,
                p.key("path_exact"),
                format!("must start with `/`, got `{s}`"),
            );
        }
        Some(PathMatch::Prefix(s)) if !s.starts_with('/') => {
            c.err(
                K::Invalid,
                p.key("path_prefix"),
                format!("must start with `/`, got `{s}`"),
            );
        }
        Some(PathMatch::Regex(s)) => check_regex(c, p.key("path_regex"), s),
        _ => {}
    }
    for (i, method) in m.methods.iter().enumerate() {
        if !is_token(method) || method.bytes().any(|b| b.is_ascii_lowercase()) {
            c.err(
                K::Invalid,
                p.key("methods").index(i),
                format!("`{method}` is not an HTTP method (an upper-case token such as GET)"),
            );
        }
    }
    for h in &m.headers {
        let hp = p.key("headers").key(&h.name);
        check_header_name(c, hp.clone(), &h.name);
        if let HeaderValueMatch::Regex(r) = &h.value {
            check_regex(c, hp.key("regex"), r);
        }
    }
}

pub(super) fn check_header_name(c: &mut Checker, p: Path, name: &str) {
    if !is_token(name) || name.bytes().any(|b| b.is_ascii_uppercase()) {
        c.err(
            K::Invalid,
            p,
            format!("`{name}` is not a header name (a lower-case token such as `x-user-id`)"),
        );
    }
}

fn check_regex(c: &mut Checker, p: Path, re: &str) {
    // The very function the router compiles with (anchored, size-limited,
    // no escaping the anchors), so a validated config always compiles.
    if let Err(e) = compile_full_match(re) {
        c.err(K::Invalid, p, format!("invalid regex: {}", e.source));
    }
}

/// An RFC 9110 token (header names, methods).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
