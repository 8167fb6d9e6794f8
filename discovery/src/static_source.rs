//! Static endpoints: from config (`services.X.endpoints`), from
//! `MESH_ENDPOINTS_<SVC>`, or from a `static:///` target.
//!
//! A static source never changes: its stream yields one
//! [`Reset`](crate::Update::Reset) and then stays pending (it does not end,
//! since an ended stream would look like a lost source to a balancer).

use std::collections::BTreeMap;

use futures_util::stream::{self, StreamExt};
use mesh_core::Endpoint;

use crate::error::DiscoveryError;
use crate::source::Discover;
use crate::update::{Update, UpdateStream, normalize};

/// Fixed endpoints per service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticSource {
    services: BTreeMap<String, Vec<Endpoint>>,
}

impl StaticSource {
    /// A source with no services.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same source with `service` served by `endpoints`.
    pub fn with_service(mut self, service: impl Into<String>, endpoints: Vec<Endpoint>) -> Self {
        self.services.insert(service.into(), normalize(endpoints));
        self
    }

    /// A source from a map of service name -> endpoints (e.g. the
    /// `MESH_ENDPOINTS_*` variables, already parsed).
    pub fn from_map(services: BTreeMap<String, Vec<Endpoint>>) -> Self {
        Self {
            services: services
                .into_iter()
                .map(|(k, v)| (k, normalize(v)))
                .collect(),
        }
    }

    /// The endpoints of `service`, if this source knows it.
    pub fn endpoints(&self, service: &str) -> Option<&[Endpoint]> {
        self.services.get(service).map(Vec::as_slice)
    }

    /// The service names this source knows.
    pub fn services(&self) -> impl Iterator<Item = &str> {
        self.services.keys().map(String::as_str)
    }
}

/// A stream that yields `Reset(endpoints)` once and then stays pending.
pub fn fixed_stream(endpoints: Vec<Endpoint>) -> UpdateStream {
    stream::once(async move { Update::Reset(endpoints) })
        .chain(stream::pending())
        .boxed()
}

impl Discover for StaticSource {
    fn watch(&self, service: &str) -> Result<UpdateStream, DiscoveryError> {
        let eps = self
            .services
            .get(service)
            .ok_or_else(|| DiscoveryError::UnknownService(service.to_string()))?;
        Ok(fixed_stream(eps.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn yields_one_reset_then_stays_pending() {
        let ep = Endpoint::new("127.0.0.1:8081".parse().unwrap()).with_weight(3);
        let src = StaticSource::new().with_service("news", vec![ep.clone()]);
        let mut s = src.watch("news").unwrap();
        assert_eq!(s.next().await, Some(Update::Reset(vec![ep])));
        let more = tokio::time::timeout(Duration::from_millis(50), s.next()).await;
        assert!(more.is_err(), "a static stream must not end or repeat");
    }

    #[test]
    fn unknown_service_is_a_typed_error() {
        let src: Box<dyn Discover> = Box::new(StaticSource::new());
        assert!(matches!(
            src.watch("nope"),
            Err(DiscoveryError::UnknownService(s)) if s == "nope"
        ));
    }
}
