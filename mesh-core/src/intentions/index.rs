//! The lookup structure: intentions indexed by destination, then by source.
//!
//! Each side is a [`Level`]: exact `ns/name` entries, `ns/*` entries and one
//! `*` entry. Looking up a service yields at most three candidates, most
//! specific first, so a decision is a handful of hash lookups whatever the
//! number of intentions.

use std::collections::HashMap;

use super::name::NamePattern;

/// Indexes into the compiled intentions sharing one (source, destination)
/// pattern pair, in list order. Empty: no intention.
pub(crate) type Bucket = Vec<usize>;

/// One side (source or destination) of the index.
#[derive(Debug, Default)]
pub(crate) struct Level<T> {
    by_namespace: HashMap<Box<str>, NamespaceLevel<T>>,
    any: Option<T>,
}

#[derive(Debug)]
struct NamespaceLevel<T> {
    by_name: HashMap<Box<str>, T>,
    any_name: Option<T>,
}

impl<T> Default for NamespaceLevel<T> {
    fn default() -> Self {
        Self {
            by_name: HashMap::new(),
            any_name: None,
        }
    }
}

// === impl Level ===

impl<T: Default> Level<T> {
    /// The entry for `pattern`, created if missing.
    pub(crate) fn entry(&mut self, pattern: &NamePattern) -> &mut T {
        match pattern {
            NamePattern::Any => self.any.get_or_insert_with(T::default),
            NamePattern::Namespace(ns) => self
                .by_namespace
                .entry(ns.clone())
                .or_default()
                .any_name
                .get_or_insert_with(T::default),
            NamePattern::Exact { namespace, name } => self
                .by_namespace
                .entry(namespace.clone())
                .or_default()
                .by_name
                .entry(name.clone())
                .or_default(),
        }
    }
}

impl<T> Level<T> {
    /// The entries matching `service` (`(namespace, name)`, or `None` for a
    /// caller that only `*` matches), most specific first:
    /// `ns/name`, `ns/*`, `*`.
    pub(crate) fn candidates(&self, service: Option<(&str, &str)>) -> [Option<&T>; 3] {
        let (exact, ns_any) = match service {
            Some((ns, name)) => match self.by_namespace.get(ns) {
                Some(level) => (level.by_name.get(name), level.any_name.as_ref()),
                None => (None, None),
            },
            None => (None, None),
        };
        [exact, ns_any, self.any.as_ref()]
    }
}
