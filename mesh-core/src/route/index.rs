//! An index over a service's routes, so first-match-wins does not have to
//! try every route in turn.
//!
//! Each route is filed under one key that every request it matches must
//! have:
//!
//! - routes with a path matcher that implies a literal prefix go into a byte
//!   trie: `Exact(p)` and `Prefix(p)` by `p`, `Regex(r)` by the literal
//!   text `r` starts with (conservatively extracted: nothing if in doubt);
//! - other routes with an exact header matcher go under that header's name
//!   and value (sorted, binary-searched);
//! - the rest are candidates for every request.
//!
//! A lookup walks the request path down the trie (stopping where no key
//! continues), looks up the indexed header values, and collects candidate
//! lists, each sorted by route index. Each list is scanned in order until
//! its first full match, or until it reaches an index no better than the
//! best match found so far; the smallest matching index wins. That is
//! exactly the linear first-match answer (a property test compares both),
//! in time that grows with the path length and the number of candidates,
//! not with the number of routes. No allocation per request.

use crate::config::{HeaderValueMatch, PathMatch, RouteConfig};

/// A compiled route index (see the module docs).
#[derive(Debug, Clone, Default)]
pub(super) struct RouteIndex {
    /// Trie nodes; node 0 is the root (the empty key).
    nodes: Vec<Node>,
    /// Indexed header names, each with its values.
    headers: Vec<HeaderIndex>,
    /// Routes that may match any request.
    always: Vec<u32>,
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// Edge bytes, sorted; `children[i]` is the node under `bytes[i]`.
    bytes: Vec<u8>,
    children: Vec<u32>,
    /// Routes whose key is a prefix ending here.
    prefix: Vec<u32>,
    /// Routes whose exact path ends here.
    exact: Vec<u32>,
}

#[derive(Debug, Clone)]
struct HeaderIndex {
    name: Box<str>,
    /// Sorted by value.
    values: Vec<(Box<str>, Vec<u32>)>,
}

// === impl RouteIndex ===

impl RouteIndex {
    /// Indexes `routes`. `None` if there are too many to number with `u32`.
    pub(super) fn new(routes: &[RouteConfig]) -> Option<Self> {
        let mut index = Self {
            nodes: vec![Node::default()],
            ..Self::default()
        };
        for (i, route) in routes.iter().enumerate() {
            let id = u32::try_from(i).ok()?;
            let m = &route.matches;
            let path_key = match &m.path {
                Some(PathMatch::Exact(p)) => Some((p.as_str(), true)),
                Some(PathMatch::Prefix(p)) if !p.is_empty() => Some((p.as_str(), false)),
                Some(PathMatch::Regex(r)) => {
                    Some((literal_prefix(r), false)).filter(|(k, _)| !k.is_empty())
                }
                _ => None,
            };
            if let Some((key, exact)) = path_key {
                let node = index.insert(key.as_bytes())?;
                let node = index.nodes.get_mut(node)?;
                if exact {
                    node.exact.push(id);
                } else {
                    node.prefix.push(id);
                }
                continue;
            }
            let header = m.headers.iter().find_map(|h| match &h.value {
                HeaderValueMatch::Exact(v) => Some((h.name.to_ascii_lowercase(), v.as_str())),
                _ => None,
            });
            match header {
                Some((name, value)) => index.insert_header(&name, value, id),
                None => index.always.push(id),
            }
        }
        for h in &mut index.headers {
            h.values.sort_by(|a, b| a.0.cmp(&b.0));
        }
        Some(index)
    }

    /// The node for `key`, created if missing.
    fn insert(&mut self, key: &[u8]) -> Option<usize> {
        let mut at = 0usize;
        for &b in key {
            let node = self.nodes.get(at)?;
            at = match node.bytes.binary_search(&b) {
                Ok(pos) => *node.children.get(pos)? as usize,
                Err(pos) => {
                    let child = self.nodes.len();
                    let child_id = u32::try_from(child).ok()?;
                    self.nodes.push(Node::default());
                    let node = self.nodes.get_mut(at)?;
                    node.bytes.insert(pos, b);
                    node.children.insert(pos, child_id);
                    child
                }
            };
        }
        Some(at)
    }

    fn insert_header(&mut self, name: &str, value: &str, id: u32) {
        let pos = match self.headers.iter().position(|h| &*h.name == name) {
            Some(pos) => pos,
            None => {
                self.headers.push(HeaderIndex {
                    name: name.into(),
                    values: Vec::new(),
                });
                self.headers.len() - 1
            }
        };
        if let Some(h) = self.headers.get_mut(pos) {
            match h.values.iter_mut().find(|(v, _)| &**v == value) {
                Some((_, ids)) => ids.push(id),
                None => h.values.push((value.into(), vec![id])),
            }
        }
    }

    /// The smallest route index for which `matches` holds, trying only
    /// candidates for this `path` and these headers.
    pub(super) fn first_match<'r>(
        &self,
        path: &str,
        header: impl Fn(&str) -> Option<&'r str>,
        mut matches: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let mut best = u32::MAX;
        let mut scan = |list: &[u32]| {
            for &id in list {
                if id >= best {
                    break;
                }
                if matches(id as usize) {
                    best = id;
                    break;
                }
            }
        };
        scan(&self.always);
        let mut node = self.nodes.first();
        let mut consumed = 0;
        while let Some(n) = node {
            scan(&n.prefix);
            let Some(&b) = path.as_bytes().get(consumed) else {
                scan(&n.exact);
                break;
            };
            node = n
                .bytes
                .binary_search(&b)
                .ok()
                .and_then(|pos| n.children.get(pos))
                .and_then(|&c| self.nodes.get(c as usize));
            consumed += 1;
        }
        for h in &self.headers {
            if let Some(v) = header(&h.name)
                && let Ok(pos) = h.values.binary_search_by(|(hv, _)| (**hv).cmp(v))
                && let Some((_, ids)) = h.values.get(pos)
            {
                scan(ids);
            }
        }
        (best != u32::MAX).then_some(best as usize)
    }
}

/// The literal text every string matched by regex `pattern` (as a whole)
/// starts with, conservatively: empty when in doubt. Only plain characters
/// at the very start count (no escapes, classes or groups), a quantifier
/// takes back the character before it, and a pattern with a top-level `|`
/// (or any `|` together with a character class, whose nesting rules are not
/// worth re-implementing here) has no prefix.
pub(super) fn literal_prefix(pattern: &str) -> &str {
    if has_top_level_alternation(pattern) {
        return "";
    }
    let bytes = pattern.as_bytes();
    let mut end = 0;
    let mut last_start = 0;
    while let Some(&c) = bytes.get(end) {
        if c.is_ascii_alphanumeric() || b"/_-~%:@=,;!&'<>\"# ".contains(&c) {
            last_start = end;
            end += 1;
        } else {
            break;
        }
    }
    // A quantifier after the last literal makes it optional or repeated.
    if matches!(bytes.get(end), Some(b'?' | b'*' | b'{' | b'+')) {
        end = last_start;
    }
    pattern.get(..end).unwrap_or("")
}

/// Whether `pattern` may have a `|` outside any group (conservative: any
/// `|` in a pattern with a `[` counts).
fn has_top_level_alternation(pattern: &str) -> bool {
    if !pattern.contains('|') {
        return false;
    }
    if pattern.contains('[') {
        return true;
    }
    // Without classes, unescaped parentheses are exactly the groups.
    let mut depth = 0usize;
    let mut escaped = false;
    for c in pattern.bytes() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            b'\\' => escaped = true,
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b'|' if depth == 0 => return true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_literal_prefixes() {
        let cases = [
            ("/users/[0-9]+", "/users/"),
            ("/api/(v1|v2)/x", "/api/"),
            ("/api/v1|/api/v2", ""),
            ("/a[|]b|c", ""),
            ("/ab?", "/a"),
            ("/ab*", "/a"),
            ("/ab{2}", "/a"),
            ("/ab+", "/a"),
            ("(?i)/abc", ""),
            ("^/abc", ""),
            (r"/a\.b", "/a"),
            (r"/a\|b", "/a"),
            ("/x(a|b)|y", ""),
            (".*", ""),
            ("", ""),
            ("/exact", "/exact"),
        ];
        for (pattern, want) in cases {
            assert_eq!(literal_prefix(pattern), want, "{pattern:?}");
            // Sanity: whatever we claim must be a prefix of the pattern text.
            assert!(pattern.starts_with(literal_prefix(pattern)));
        }
    }
}
