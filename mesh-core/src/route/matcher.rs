//! Compiled request matchers: path, methods and headers.
//!
//! One [`RouteMatch`] from the config compiles once (regexes included) into a
//! [`RequestMatcher`], which routes and L7 intentions then evaluate per
//! request without allocating. Requests are seen through [`RequestView`], so
//! this crate needs no HTTP library: the tower layers implement it for
//! `http::Request`, tests use [`SimpleRequest`].

use regex::Regex;

use crate::config::{HeaderMatch, HeaderValueMatch, PathMatch, RouteMatch};

/// Regexes larger than this (compiled program size, bytes) are refused.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// What a matcher needs to see of a request.
pub trait RequestView {
    /// The method, e.g. `GET`.
    fn method(&self) -> &str;
    /// The path, without the query string (`/api/news`).
    fn path(&self) -> &str;
    /// The first value of header `name` (given lower case), if present and
    /// valid text.
    fn header(&self, name: &str) -> Option<&str>;
}

/// A plain request, for tests and for callers without an HTTP type at hand.
#[derive(Debug, Clone, Default)]
pub struct SimpleRequest {
    /// Method.
    pub method: String,
    /// Path without query.
    pub path: String,
    /// Headers as (lower-case name, value).
    pub headers: Vec<(String, String)>,
}

impl SimpleRequest {
    /// A request with `method` and `path` and no headers.
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_string(),
            path: path.to_string(),
            headers: Vec::new(),
        }
    }

    /// The same request with one more header (`name` is lower-cased).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }
}

impl RequestView for SimpleRequest {
    fn method(&self) -> &str {
        &self.method
    }

    fn path(&self) -> &str {
        &self.path
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A regex in a matcher did not compile.
#[derive(Debug, thiserror::Error)]
#[error("invalid regex {pattern:?}: {source}")]
pub struct MatcherError {
    /// The pattern as written.
    pub pattern: String,
    /// Why it was refused.
    #[source]
    pub source: regex::Error,
}

/// A compiled [`RouteMatch`]: every given matcher must match.
#[derive(Debug, Clone)]
pub struct RequestMatcher {
    path: Option<CompiledPath>,
    methods: Vec<String>,
    headers: Vec<CompiledHeader>,
}

#[derive(Debug, Clone)]
enum CompiledPath {
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

#[derive(Debug, Clone)]
struct CompiledHeader {
    name: String,
    value: CompiledValue,
}

#[derive(Debug, Clone)]
enum CompiledValue {
    Exact(String),
    Prefix(String),
    Regex(Regex),
    Present(bool),
}

/// Compiles `pattern` anchored at both ends (the whole text must match).
///
/// The pattern is first compiled on its own: `a)|(b` is not a regex, but
/// would compile once wrapped in `^(?:...)$` and escape the anchors.
pub fn compile_full_match(pattern: &str) -> Result<Regex, MatcherError> {
    let build = |p: &str| {
        regex::RegexBuilder::new(p)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|source| MatcherError {
                pattern: pattern.to_string(),
                source,
            })
    };
    build(pattern)?;
    build(&format!("^(?:{pattern})$"))
}

// === impl RequestMatcher ===

impl RequestMatcher {
    /// Compiles `m`. Fails only on a regex that does not compile (validated
    /// configs never do).
    pub fn new(m: &RouteMatch) -> Result<Self, MatcherError> {
        let path = match &m.path {
            None => None,
            Some(PathMatch::Exact(p)) => Some(CompiledPath::Exact(p.clone())),
            Some(PathMatch::Prefix(p)) => Some(CompiledPath::Prefix(p.clone())),
            Some(PathMatch::Regex(r)) => Some(CompiledPath::Regex(compile_full_match(r)?)),
        };
        let headers = m
            .headers
            .iter()
            .map(|HeaderMatch { name, value }| {
                let value = match value {
                    HeaderValueMatch::Exact(v) => CompiledValue::Exact(v.clone()),
                    HeaderValueMatch::Prefix(v) => CompiledValue::Prefix(v.clone()),
                    HeaderValueMatch::Regex(r) => CompiledValue::Regex(compile_full_match(r)?),
                    HeaderValueMatch::Present(p) => CompiledValue::Present(*p),
                };
                Ok(CompiledHeader {
                    name: name.to_ascii_lowercase(),
                    value,
                })
            })
            .collect::<Result<Vec<_>, MatcherError>>()?;
        Ok(Self {
            path,
            methods: m.methods.iter().map(|s| s.to_ascii_uppercase()).collect(),
            headers,
        })
    }

    /// A matcher that matches every request.
    pub fn any() -> Self {
        Self {
            path: None,
            methods: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// Whether `req` matches: path, then method, then headers.
    pub fn matches<R: RequestView + ?Sized>(&self, req: &R) -> bool {
        if let Some(path) = &self.path {
            let p = req.path();
            let ok = match path {
                CompiledPath::Exact(e) => p == e,
                CompiledPath::Prefix(pre) => p.starts_with(pre.as_str()),
                CompiledPath::Regex(re) => re.is_match(p),
            };
            if !ok {
                return false;
            }
        }
        if !self.methods.is_empty() {
            let m = req.method();
            if !self.methods.iter().any(|allowed| allowed == m) {
                return false;
            }
        }
        self.headers.iter().all(|h| {
            let v = req.header(&h.name);
            match (&h.value, v) {
                (CompiledValue::Present(want), v) => v.is_some() == *want,
                (_, None) => false,
                (CompiledValue::Exact(e), Some(v)) => v == e,
                (CompiledValue::Prefix(pre), Some(v)) => v.starts_with(pre.as_str()),
                (CompiledValue::Regex(re), Some(v)) => re.is_match(v),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(m: RouteMatch) -> RequestMatcher {
        RequestMatcher::new(&m).unwrap()
    }

    #[test]
    fn empty_match_matches_everything() {
        let m = matcher(RouteMatch::default());
        assert!(m.matches(&SimpleRequest::new("DELETE", "/anything")));
        assert!(RequestMatcher::any().matches(&SimpleRequest::new("GET", "/")));
    }

    #[test]
    fn paths() {
        let exact = matcher(RouteMatch {
            path: Some(PathMatch::Exact("/metrics".into())),
            ..Default::default()
        });
        assert!(exact.matches(&SimpleRequest::new("GET", "/metrics")));
        assert!(!exact.matches(&SimpleRequest::new("GET", "/metrics/x")));

        let prefix = matcher(RouteMatch {
            path: Some(PathMatch::Prefix("/api/".into())),
            ..Default::default()
        });
        assert!(prefix.matches(&SimpleRequest::new("GET", "/api/news")));
        assert!(!prefix.matches(&SimpleRequest::new("GET", "/apix")));

        let regex = matcher(RouteMatch {
            path: Some(PathMatch::Regex("/users/[0-9]+".into())),
            ..Default::default()
        });
        assert!(regex.matches(&SimpleRequest::new("GET", "/users/42")));
        assert!(
            !regex.matches(&SimpleRequest::new("GET", "/users/42/x")),
            "regex matches the whole path, not a part"
        );
    }

    #[test]
    fn methods_are_case_normalised_in_config() {
        let m = matcher(RouteMatch {
            methods: vec!["get".into(), "HEAD".into()],
            ..Default::default()
        });
        assert!(m.matches(&SimpleRequest::new("GET", "/")));
        assert!(m.matches(&SimpleRequest::new("HEAD", "/")));
        assert!(!m.matches(&SimpleRequest::new("POST", "/")));
    }

    #[test]
    fn headers_all_kinds() {
        let m = matcher(RouteMatch {
            headers: vec![
                HeaderMatch {
                    name: "X-Canary".into(),
                    value: HeaderValueMatch::Exact("true".into()),
                },
                HeaderMatch {
                    name: "x-user".into(),
                    value: HeaderValueMatch::Prefix("admin-".into()),
                },
                HeaderMatch {
                    name: "x-region".into(),
                    value: HeaderValueMatch::Regex("eu-(west|north)".into()),
                },
                HeaderMatch {
                    name: "x-debug".into(),
                    value: HeaderValueMatch::Present(false),
                },
            ],
            ..Default::default()
        });
        let ok = SimpleRequest::new("GET", "/")
            .with_header("x-canary", "true")
            .with_header("x-user", "admin-bob")
            .with_header("x-region", "eu-west");
        assert!(m.matches(&ok));
        assert!(!m.matches(&ok.clone().with_header("x-debug", "1")));
        let wrong_region = SimpleRequest::new("GET", "/")
            .with_header("x-canary", "true")
            .with_header("x-user", "admin-bob")
            .with_header("x-region", "eu-westx");
        assert!(!m.matches(&wrong_region));
        assert!(!m.matches(&SimpleRequest::new("GET", "/").with_header("x-user", "admin-1")));
    }

    #[test]
    fn bad_regex_is_a_typed_error() {
        let err = RequestMatcher::new(&RouteMatch {
            path: Some(PathMatch::Regex("(unclosed".into())),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.pattern, "(unclosed");
        assert!(err.to_string().contains("invalid regex"));
    }

    #[test]
    fn pattern_cannot_escape_the_anchors() {
        // `^(?:a)|(b)$` would compile and match "xa..." without the check.
        let err = compile_full_match("a)|(b").unwrap_err();
        assert_eq!(err.pattern, "a)|(b");
    }
}
