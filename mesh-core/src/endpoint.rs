//! Endpoints: one reachable instance of a service.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Serialize;

/// The weight an endpoint gets when none is given.
pub const DEFAULT_WEIGHT: u32 = 1;

/// The largest weight an endpoint may have (config, env, DNS SRV and xDS alike).
pub const MAX_WEIGHT: u32 = 1_000_000;

/// One instance of a service, as discovery reports it.
///
/// An endpoint is identified by its `address`: two endpoints with the same
/// address are the same endpoint (an update may change its weight or labels).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// Where to connect.
    pub address: SocketAddr,
    /// Relative share of traffic, `1..=MAX_WEIGHT`.
    pub weight: u32,
    /// Locality (zone), if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Labels, used by subsets (`version: v1`, ...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Endpoint {
    /// An endpoint at `address` with the default weight, no zone and no labels.
    pub fn new(address: SocketAddr) -> Self {
        Self {
            address,
            weight: DEFAULT_WEIGHT,
            zone: None,
            labels: BTreeMap::new(),
        }
    }

    /// The same endpoint with `weight`, clamped to `1..=MAX_WEIGHT`.
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight.clamp(1, MAX_WEIGHT);
        self
    }

    /// The same endpoint with one more label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// The same endpoint in `zone`.
    pub fn with_zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = Some(zone.into());
        self
    }

    /// Whether every `key: value` of `selector` is among this endpoint's labels.
    pub fn matches(&self, selector: &BTreeMap<String, String>) -> bool {
        selector
            .iter()
            .all(|(k, v)| self.labels.get(k).is_some_and(|have| have == v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_needs_every_label() {
        let ep = Endpoint::new("127.0.0.1:80".parse().unwrap())
            .with_label("version", "v1")
            .with_label("zone", "a");
        let mut sel = BTreeMap::new();
        assert!(ep.matches(&sel), "empty selector matches all");
        sel.insert("version".to_string(), "v1".to_string());
        assert!(ep.matches(&sel));
        sel.insert("tier".to_string(), "gold".to_string());
        assert!(!ep.matches(&sel));
    }

    #[test]
    fn weight_is_clamped() {
        let a: SocketAddr = "127.0.0.1:80".parse().unwrap();
        assert_eq!(Endpoint::new(a).with_weight(0).weight, 1);
        assert_eq!(Endpoint::new(a).with_weight(u32::MAX).weight, MAX_WEIGHT);
    }
}
