//! Attribute values of the server layer, built once and reused: the
//! service, each gRPC method, each caller identity, each status code.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use arc_swap::ArcSwap;
use opentelemetry::Value;
use tonic::Code;

/// How many methods (or identities) a cache keeps; past that, values are
/// built per call (correct, just not free).
const CACHE_CAP: usize = 1024;

/// A copy-on-write map from a key to its attribute value: reads take no
/// lock (an `ArcSwap` load), inserts copy the map. For small sets that
/// change rarely: a server's methods, its callers' identities.
pub(super) struct LabelCache<K> {
    map: ArcSwap<HashMap<K, Value>>,
}

impl<K: Hash + Eq + Clone> LabelCache<K> {
    pub(super) fn new() -> Self {
        LabelCache {
            map: ArcSwap::from_pointee(HashMap::new()),
        }
    }

    pub(super) fn get<Q>(&self, key: &Q) -> Option<Value>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.load().get(key).cloned()
    }

    /// Adds `key` unless the cache is full.
    pub(super) fn insert(&self, key: K, value: Value) {
        self.map.rcu(|cur| {
            if cur.len() >= CACHE_CAP || cur.contains_key(&key) {
                return Arc::clone(cur);
            }
            let mut next = HashMap::clone(cur);
            next.insert(key.clone(), value.clone());
            Arc::new(next)
        });
    }
}

impl<K> fmt::Debug for LabelCache<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LabelCache")
            .field("len", &self.map.load().len())
            .finish()
    }
}

/// The `grpc.method` value of a request path (`/package.Service/Method` ->
/// `package.Service/Method`).
pub(super) fn method_name(path: &str) -> &str {
    path.strip_prefix('/').unwrap_or(path)
}

/// A status code's canonical name, as gRFC A66 labels it (`OK`,
/// `UNAVAILABLE`, ...): [`crate::metrics::code_name`] for a [`Code`].
pub fn code_name(code: Code) -> &'static str {
    crate::metrics::code_name(u32::try_from(i32::from(code)).unwrap_or(2))
}

/// The `grpc-status` in `headers` (response headers of a trailers-only
/// answer, or trailers), if any. A value that is not a number is UNKNOWN,
/// as gRPC clients read it.
pub(super) fn grpc_status(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .map(|v| Code::from_bytes(v.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_statuses_and_methods() {
        assert_eq!(code_name(Code::Ok), "OK");
        assert_eq!(code_name(Code::Unavailable), "UNAVAILABLE");
        assert_eq!(code_name(Code::DeadlineExceeded), "DEADLINE_EXCEEDED");
        assert_eq!(
            method_name("/helloworld.Greeter/SayHello"),
            "helloworld.Greeter/SayHello"
        );
        let mut h = http::HeaderMap::new();
        assert_eq!(grpc_status(&h), None);
        h.insert("grpc-status", http::HeaderValue::from_static("14"));
        assert_eq!(grpc_status(&h), Some(Code::Unavailable));
        h.insert("grpc-status", http::HeaderValue::from_static("x"));
        assert_eq!(grpc_status(&h), Some(Code::Unknown));
    }

    #[test]
    fn the_cache_returns_what_was_inserted() {
        let cache: LabelCache<Box<str>> = LabelCache::new();
        assert!(cache.get("a").is_none());
        cache.insert("a".into(), Value::from("A"));
        cache.insert("a".into(), Value::from("other"));
        assert_eq!(cache.get("a"), Some(Value::from("A")));
    }
}
