//! Request matchers, routes, intentions and gateways.

use super::super::error::ConfigErrorKind as K;
use super::super::model::{
    GatewayConfig, GatewayRoute, HeaderMatch, HeaderValueMatch, Intention, IntentionRule,
    PathMatch, Permission, RouteConfig, RouteMatch,
};
use super::super::tree::{Kind, Node, Path};
use super::{Ctx, Fields, policy};

const MATCH_FIELDS: &[&str] = &[
    "path_exact",
    "path_prefix",
    "path_regex",
    "methods",
    "headers",
];

/// Decodes the matcher fields found in `f` (a `match:` mapping or an L7
/// permission, which has them inline).
pub(crate) fn decode_route_match_fields(f: &Fields<'_>, ctx: &mut Ctx) -> RouteMatch {
    let mut m = RouteMatch::default();
    let given: Vec<&str> = ["path_exact", "path_prefix", "path_regex"]
        .into_iter()
        .filter(|k| f.has(k))
        .collect();
    if given.len() > 1 {
        let p = f.path(given.get(1).copied().unwrap_or("path_prefix"));
        let line = given.get(1).and_then(|k| f.get(k)).and_then(|n| n.line);
        ctx.err(
            K::Conflict,
            &p,
            line,
            format!(
                "at most one of path_exact, path_prefix, path_regex; got {}",
                given.join(" and ")
            ),
        );
    }
    if let Some(key) = given.first()
        && let Some(s) = f.get(key).and_then(|n| ctx.string(n, &f.path(key)))
    {
        m.path = Some(match *key {
            "path_exact" => PathMatch::Exact(s),
            "path_prefix" => PathMatch::Prefix(s),
            _ => PathMatch::Regex(s),
        });
    }
    if let Some(n) = f.get("methods") {
        let p = f.path("methods");
        if let Some(items) = ctx.seq(n, &p) {
            let mut kept = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if let Some(s) = ctx.string(item, &p.index(i)) {
                    let s = s.to_ascii_uppercase();
                    if m.methods.contains(&s) {
                        ctx.err(
                            K::Duplicate,
                            &p.index(i),
                            item.line,
                            format!("method `{s}` listed twice"),
                        );
                    } else {
                        m.methods.push(s);
                        kept.push(i);
                    }
                }
            }
            ctx.remap(&p, kept, items.len());
        }
    }
    if let Some(n) = f.get("headers") {
        let p = f.path("headers");
        if let Some(entries) = ctx.entries(n, &p) {
            for e in entries {
                let hp = p.key(&e.key);
                let name = e.key.to_ascii_lowercase();
                if m.headers.iter().any(|h| h.name == name) {
                    ctx.err(
                        K::Duplicate,
                        &hp,
                        e.line,
                        format!("header `{name}` given twice (names are case-insensitive)"),
                    );
                    continue;
                }
                if let Some(value) = decode_header_value(&e.value, &hp, ctx) {
                    m.headers.push(HeaderMatch { name, value });
                }
            }
        }
    }
    // All header matchers must match, so their order means nothing: keep
    // them sorted, so equal configs compare equal whatever the file order.
    m.headers.sort_by(|a, b| a.name.cmp(&b.name));
    m
}

fn decode_header_value(node: &Node, path: &Path, ctx: &mut Ctx) -> Option<HeaderValueMatch> {
    if let Kind::Str(s) = &node.kind {
        return Some(HeaderValueMatch::Exact(s.clone()));
    }
    if !matches!(node.kind, Kind::Map(_)) {
        let msg = format!(
            "expected an exact value (a string; quote `true` or numbers) or one of {{ prefix: }}, {{ regex: }}, {{ present: true|false }}; got {}",
            node.type_name()
        );
        ctx.err(K::Type, path, node.line, msg);
        return None;
    }
    let f = ctx.fields(node, path, &["prefix", "regex", "present"])?;
    let given: Vec<&str> = ["prefix", "regex", "present"]
        .into_iter()
        .filter(|k| f.has(k))
        .collect();
    match given.as_slice() {
        ["prefix"] => f
            .get("prefix")
            .and_then(|n| ctx.string(n, &f.path("prefix")))
            .map(HeaderValueMatch::Prefix),
        ["regex"] => f
            .get("regex")
            .and_then(|n| ctx.string(n, &f.path("regex")))
            .map(HeaderValueMatch::Regex),
        ["present"] => f
            .get("present")
            .and_then(|n| ctx.boolean(n, &f.path("present")))
            .map(HeaderValueMatch::Present),
        [] => {
            ctx.err(
                K::Missing,
                path,
                node.line,
                "give one of `prefix`, `regex`, `present`",
            );
            None
        }
        _ => {
            let msg = format!(
                "exactly one of `prefix`, `regex`, `present`; got {}",
                given.join(" and ")
            );
            ctx.err(K::Conflict, path, node.line, msg);
            None
        }
    }
}

fn decode_match(node: &Node, path: &Path, ctx: &mut Ctx) -> RouteMatch {
    match ctx.fields(node, path, MATCH_FIELDS) {
        Some(f) => decode_route_match_fields(&f, ctx),
        None => RouteMatch::default(),
    }
}

pub(super) fn decode_route(node: &Node, path: &Path, ctx: &mut Ctx) -> Option<RouteConfig> {
    let f = ctx.fields(node, path, &["name", "match", "split", "timeout", "retry"])?;
    let mut r = RouteConfig::default();
    if let Some(n) = f.get("name") {
        r.name = ctx.string(n, &f.path("name"));
    }
    if let Some(n) = f.get("match") {
        r.matches = decode_match(n, &f.path("match"), ctx);
    }
    if let Some(n) = f.get("split") {
        let p = f.path("split");
        if let Some(entries) = ctx.entries(n, &p) {
            for e in entries {
                if let Some(w) = ctx.u32(&e.value, &p.key(&e.key)) {
                    r.split.insert(e.key.clone(), w);
                }
            }
        }
    }
    if let Some(n) = f.get("timeout") {
        r.timeout = ctx.duration(n, &f.path("timeout"));
    }
    if let Some(n) = f.get("retry") {
        r.retry = policy::decode_retry(n, &f.path("retry"), ctx);
    }
    Some(r)
}

pub(super) fn decode_intention(node: &Node, path: &Path, ctx: &mut Ctx) -> Option<Intention> {
    let f = ctx.fields(
        node,
        path,
        &["source", "destination", "action", "permissions"],
    )?;
    let name = |key: &str, ctx: &mut Ctx| match f.get(key) {
        Some(n) => ctx.string(n, &f.path(key)),
        None => {
            ctx.err(
                K::Missing,
                path,
                f.line(),
                format!("missing `{key}` (a service name, `ns/name`, `ns/*` or \"*\")"),
            );
            None
        }
    };
    let source = name("source", ctx);
    let destination = name("destination", ctx);
    let rule = match (f.get("action"), f.get("permissions")) {
        (Some(a), None) => ctx.action(a, &f.path("action")).map(IntentionRule::Action),
        (None, Some(p)) => {
            decode_permissions(p, &f.path("permissions"), ctx).map(IntentionRule::Permissions)
        }
        (None, None) => {
            ctx.err(
                K::Missing,
                path,
                f.line(),
                "give either `action` (L4) or `permissions` (L7)",
            );
            None
        }
        (Some(a), Some(_)) => {
            ctx.err(
                K::Conflict,
                &f.path("permissions"),
                a.line,
                "give either `action` (L4) or `permissions` (L7), not both",
            );
            None
        }
    };
    Some(Intention {
        source: source?,
        destination: destination?,
        rule: rule?,
    })
}

fn decode_permissions(node: &Node, path: &Path, ctx: &mut Ctx) -> Option<Vec<Permission>> {
    let items = ctx.seq(node, path)?;
    let mut out = Vec::new();
    let mut allowed = vec!["action"];
    allowed.extend_from_slice(MATCH_FIELDS);
    let mut kept = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = path.index(i);
        let Some(f) = ctx.fields(item, &p, &allowed) else {
            continue;
        };
        let action = match f.get("action") {
            Some(a) => ctx.action(a, &f.path("action")),
            None => {
                ctx.err(K::Missing, &p, f.line(), "missing `action` (allow or deny)");
                None
            }
        };
        let matches = decode_route_match_fields(&f, ctx);
        if let Some(action) = action {
            out.push(Permission { action, matches });
            kept.push(i);
        }
    }
    ctx.remap(path, kept, items.len());
    Some(out)
}

pub(super) fn decode_gateway(node: &Node, path: &Path, ctx: &mut Ctx) -> Option<GatewayConfig> {
    let f = ctx.fields(node, path, &["listen", "routes"])?;
    let listen = match f.get("listen") {
        Some(n) => {
            let p = f.path("listen");
            ctx.string(n, &p).and_then(|s| match s.parse() {
                Ok(a) => Some(a),
                Err(_) => {
                    ctx.err(
                        K::Invalid,
                        &p,
                        n.line,
                        format!("`{s}` is not an ip:port address, e.g. `127.0.0.1:10000`"),
                    );
                    None
                }
            })
        }
        None => {
            ctx.err(K::Missing, path, f.line(), "missing `listen` (ip:port)");
            None
        }
    };
    let mut routes = Vec::new();
    if let Some(n) = f.get("routes") {
        let p = f.path("routes");
        if let Some(items) = ctx.seq(n, &p) {
            let mut kept = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let rp = p.index(i);
                let Some(rf) = ctx.fields(item, &rp, &["match", "service"]) else {
                    continue;
                };
                let matches = rf
                    .get("match")
                    .map(|m| decode_match(m, &rf.path("match"), ctx))
                    .unwrap_or_default();
                let service = match rf.get("service") {
                    Some(s) => ctx.string(s, &rf.path("service")),
                    None => {
                        ctx.err(
                            K::Missing,
                            &rp,
                            rf.line(),
                            "missing `service`: the service to route to",
                        );
                        None
                    }
                };
                if let Some(service) = service {
                    routes.push(GatewayRoute { matches, service });
                    kept.push(i);
                }
            }
            ctx.remap(&p, kept, items.len());
        }
    }
    Some(GatewayConfig {
        listen: listen?,
        routes,
    })
}
