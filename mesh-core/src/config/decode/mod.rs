//! Decoding the spanned tree into the typed model, collecting every error.
//!
//! The decoder checks the *shape*: known fields only, types, syntax of
//! durations, addresses and names, matcher exclusivity. Rules on the
//! resulting values (ranges, references between fields) live in
//! [`super::validate`], so configs built in code get the same checks.
//! A field that fails to decode is left at its default and decoding goes on,
//! so one run reports everything.

mod matching;
mod policy;
mod service;

use std::collections::BTreeMap;
use std::time::Duration;

use super::duration::parse_duration;
use super::error::ConfigErrorKind;
use super::model::{Action, MeshConfig};
use super::tree::{Entry, Kind, Node, Path, Seg};
use super::validate::Issue;

pub(crate) use service::dns_text;

/// Decodes a whole document. Always returns a (best-effort) config; it is
/// valid only if `ctx` collected no issue.
pub(crate) fn decode(root: &Node, ctx: &mut Ctx) -> MeshConfig {
    let mut cfg = MeshConfig::default();
    let path = Path::root();
    let Some(f) = ctx.fields(
        root,
        &path,
        &[
            "trust_domain",
            "default_policy",
            "services",
            "intentions",
            "gateways",
        ],
    ) else {
        return cfg;
    };
    if let Some(v) = f
        .get("trust_domain")
        .and_then(|n| ctx.string(n, &f.path("trust_domain")))
    {
        cfg.trust_domain = v;
    }
    if let Some(n) = f.get("default_policy")
        && let Some(a) = ctx.action(n, &f.path("default_policy"))
    {
        cfg.default_policy = a;
    }
    if let Some(n) = f.get("services") {
        let p = f.path("services");
        if let Some(entries) = ctx.entries(n, &p) {
            for e in entries {
                let svc = service::decode_service(&e.value, &p.key(&e.key), ctx);
                cfg.services.insert(e.key.clone(), svc);
            }
        }
    }
    if let Some(n) = f.get("intentions") {
        let p = f.path("intentions");
        if let Some(items) = ctx.seq(n, &p) {
            let mut kept = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if let Some(it) = matching::decode_intention(item, &p.index(i), ctx) {
                    cfg.intentions.push(it);
                    kept.push(i);
                }
            }
            ctx.remap(&p, kept, items.len());
        }
    }
    if let Some(n) = f.get("gateways") {
        let p = f.path("gateways");
        if let Some(entries) = ctx.entries(n, &p) {
            for e in entries {
                if let Some(g) = matching::decode_gateway(&e.value, &p.key(&e.key), ctx) {
                    cfg.gateways.insert(e.key.clone(), g);
                }
            }
        }
    }
    cfg
}

/// Collects issues while decoding.
#[derive(Default)]
pub(crate) struct Ctx {
    pub issues: Vec<Issue>,
    /// Lists where some items failed to decode: the list's path in the file
    /// and, for each item of the model's list, its index in the file.
    pub remaps: Vec<(Path, Vec<usize>)>,
}

/// The fields of one mapping, already checked against the allowed names.
pub(crate) struct Fields<'a> {
    entries: &'a [Entry],
    path: Path,
    line: Option<u32>,
}

impl<'a> Fields<'a> {
    /// The value of `key`, if given and not null.
    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.value)
            .filter(|n| n.kind != Kind::Null)
    }

    /// Whether `key` is given (and not null).
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The path of `key` in this mapping.
    pub fn path(&self, key: &str) -> Path {
        self.path.key(key)
    }

    /// The line of the mapping itself.
    pub fn line(&self) -> Option<u32> {
        self.line
    }
}

impl Ctx {
    /// Notes which file items (`kept`) the model's list holds, when some
    /// of the `total` items were dropped, so model errors point at the
    /// right item.
    pub fn remap(&mut self, path: &Path, kept: Vec<usize>, total: usize) {
        if kept.len() != total {
            self.remaps.push((path.clone(), kept));
        }
    }

    /// Rewrites the list indices of a model path into file indices.
    pub fn file_path(&self, model: &Path) -> Path {
        let mut out = model.clone();
        // Outer lists first: inner lists are recorded under file indices.
        let mut maps: Vec<&(Path, Vec<usize>)> = self.remaps.iter().collect();
        maps.sort_by_key(|(p, _)| p.0.len());
        for (list, kept) in maps {
            let n = list.0.len();
            if out.0.get(..n) == Some(list.0.as_slice())
                && let Some(Seg::Index(i)) = out.0.get_mut(n)
            {
                *i = kept.get(*i).copied().unwrap_or(*i);
            }
        }
        out
    }

    /// Records an issue.
    pub fn err(
        &mut self,
        kind: ConfigErrorKind,
        path: &Path,
        line: Option<u32>,
        msg: impl Into<String>,
    ) {
        self.issues.push(Issue {
            path: path.clone(),
            line,
            kind,
            message: msg.into(),
        });
    }

    fn type_err(&mut self, node: &Node, path: &Path, expected: &str) {
        let msg = format!("expected {expected}, got {}", node.type_name());
        self.err(ConfigErrorKind::Type, path, node.line, msg);
    }

    /// The entries of a mapping (any keys).
    pub fn entries<'a>(&mut self, node: &'a Node, path: &Path) -> Option<&'a [Entry]> {
        match &node.kind {
            Kind::Map(entries) => Some(entries),
            _ => {
                self.type_err(node, path, "a mapping");
                None
            }
        }
    }

    /// The fields of a mapping whose keys must be among `allowed`.
    pub fn fields<'a>(
        &mut self,
        node: &'a Node,
        path: &Path,
        allowed: &[&str],
    ) -> Option<Fields<'a>> {
        let entries = self.entries(node, path)?;
        for e in entries {
            if !allowed.contains(&e.key.as_str()) {
                let mut msg = format!("unknown field `{}`", e.key);
                if let Some(s) = suggest(&e.key, allowed) {
                    msg.push_str(&format!("; did you mean `{s}`?"));
                }
                msg.push_str(&format!("; allowed fields: {}", allowed.join(", ")));
                let line = e.line.or(node.line);
                self.err(ConfigErrorKind::UnknownField, &path.key(&e.key), line, msg);
            }
        }
        Some(Fields {
            entries,
            path: path.clone(),
            line: node.line,
        })
    }

    /// A list.
    pub fn seq<'a>(&mut self, node: &'a Node, path: &Path) -> Option<&'a [Node]> {
        match &node.kind {
            Kind::Seq(items) => Some(items),
            _ => {
                self.type_err(node, path, "a list");
                None
            }
        }
    }

    /// A string.
    pub fn string(&mut self, node: &Node, path: &Path) -> Option<String> {
        match &node.kind {
            Kind::Str(s) => Some(s.clone()),
            Kind::Int(_) | Kind::Float(_) | Kind::Bool(_) => {
                let msg = format!("expected a string, got {}; quote it", node.type_name());
                self.err(ConfigErrorKind::Type, path, node.line, msg);
                None
            }
            _ => {
                self.type_err(node, path, "a string");
                None
            }
        }
    }

    /// A boolean.
    pub fn boolean(&mut self, node: &Node, path: &Path) -> Option<bool> {
        match node.kind {
            Kind::Bool(b) => Some(b),
            _ => {
                self.type_err(node, path, "`true` or `false`");
                None
            }
        }
    }

    /// An integer in `0..=max` (the model's range checks come later).
    pub fn int(&mut self, node: &Node, path: &Path, max: u64) -> Option<u64> {
        match node.kind {
            Kind::Int(i) => match u64::try_from(i) {
                Ok(v) if v <= max => Some(v),
                _ => {
                    let msg = format!("must be an integer between 0 and {max}, got {i}");
                    self.err(ConfigErrorKind::Invalid, path, node.line, msg);
                    None
                }
            },
            _ => {
                self.type_err(node, path, "an integer");
                None
            }
        }
    }

    /// A `u32`.
    pub fn u32(&mut self, node: &Node, path: &Path) -> Option<u32> {
        self.int(node, path, u64::from(u32::MAX))
            .and_then(|v| u32::try_from(v).ok())
    }

    /// A finite number (integers accepted).
    pub fn number(&mut self, node: &Node, path: &Path) -> Option<f64> {
        let v = match node.kind {
            Kind::Float(f) => f,
            // Precision loss above 2^53 is irrelevant for ratios and factors.
            #[allow(clippy::cast_precision_loss)]
            Kind::Int(i) => i as f64,
            _ => {
                self.type_err(node, path, "a number");
                return None;
            }
        };
        if v.is_finite() {
            Some(v)
        } else {
            self.err(
                ConfigErrorKind::Invalid,
                path,
                node.line,
                "must be a finite number",
            );
            None
        }
    }

    /// A duration string (`250ms`, `2s`).
    pub fn duration(&mut self, node: &Node, path: &Path) -> Option<Duration> {
        match &node.kind {
            Kind::Str(s) => match parse_duration(s) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.err(ConfigErrorKind::Invalid, path, node.line, e.to_string());
                    None
                }
            },
            Kind::Int(i) => {
                let msg = format!(
                    "durations need a unit: write e.g. \"{i}ms\" or \"{i}s\" (units: ms, s, m, h)"
                );
                self.err(ConfigErrorKind::Type, path, node.line, msg);
                None
            }
            _ => {
                self.type_err(node, path, "a duration such as \"250ms\" or \"2s\"");
                None
            }
        }
    }

    /// `allow` or `deny`.
    pub fn action(&mut self, node: &Node, path: &Path) -> Option<Action> {
        let s = self.string(node, path)?;
        match s.as_str() {
            "allow" => Some(Action::Allow),
            "deny" => Some(Action::Deny),
            _ => {
                let msg = format!("must be `allow` or `deny`, got `{s}`");
                self.err(ConfigErrorKind::Invalid, path, node.line, msg);
                None
            }
        }
    }

    /// A mapping of strings to strings (labels, selectors).
    pub fn string_map(&mut self, node: &Node, path: &Path) -> Option<BTreeMap<String, String>> {
        let entries = self.entries(node, path)?;
        let mut out = BTreeMap::new();
        let mut ok = true;
        for e in entries {
            match self.string(&e.value, &path.key(&e.key)) {
                Some(v) => {
                    out.insert(e.key.clone(), v);
                }
                None => ok = false,
            }
        }
        // Partial maps would make a selector select more than written.
        ok.then_some(out)
    }
}

/// The allowed name closest to `got`, if close enough to be a likely typo.
pub(crate) fn suggest<'a>(got: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (edit_distance(got, a), *a))
        .filter(|(d, a)| *d <= (a.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// Optimal-string-alignment distance (Levenshtein plus transpositions).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    let at = |i: usize, j: usize| i * w + j;
    for i in 0..=a.len() {
        d[at(i, 0)] = i;
    }
    for j in 0..=b.len() {
        d[at(0, j)] = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[at(i - 1, j)] + 1)
                .min(d[at(i, j - 1)] + 1)
                .min(d[at(i - 1, j - 1)] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[at(i - 2, j - 2)] + 1);
            }
            d[at(i, j)] = v;
        }
    }
    d[at(a.len(), b.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_by_edit_distance() {
        assert_eq!(edit_distance("retyr", "retry"), 1);
        assert_eq!(suggest("retyr", &["timeout", "retry"]), Some("retry"));
        assert_eq!(
            suggest("endpoint", &["endpoints", "dns"]),
            Some("endpoints")
        );
        assert_eq!(suggest("zzzzzz", &["timeout", "retry"]), None);
    }
}
