//! # mesh-discovery: where endpoints and config come from
//!
//! The balancer at the bottom of the client stack needs to know, for each
//! upstream service, its current endpoint set. This crate answers with a
//! stream of [`Update`]s per service ([`Reset`](Update::Reset) /
//! [`Add`](Update::Add) / [`Remove`](Update::Remove) /
//! [`DoesNotExist`](Update::DoesNotExist)), whatever the endpoints come from:
//!
//! | source | module |
//! | --- | --- |
//! | fixed endpoints (config, `MESH_ENDPOINTS_<SVC>`, `static:///`) | [`static_source`] |
//! | the `MESH_CONFIG` file, watched (a bad edit keeps the last good config) | [`file`](mod@file) |
//! | DNS: A/AAAA (`host:port`) and SRV (`_service._proto.name`), TTL-driven | [`dns`] |
//!
//! Each source implements [`Discover`]; [`resolve::Resolver`] applies the
//! documented resolution order (config file > `MESH_ENDPOINTS_<SVC>` > DNS of
//! the name) and accepts explicit [`Target`] URIs. Every source fails static:
//! once a service had endpoints, errors never empty its set.
//!
//! ```
//! use futures_util::StreamExt;
//! use mesh_discovery::{Discover, StaticSource, Update};
//! use mesh_core::Endpoint;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), mesh_discovery::DiscoveryError> {
//! let ep = Endpoint::new("127.0.0.1:8081".parse().unwrap());
//! let source = StaticSource::new().with_service("news", vec![ep.clone()]);
//! let mut updates = source.watch("news")?;
//! assert_eq!(updates.next().await, Some(Update::Reset(vec![ep])));
//! # Ok(())
//! # }
//! ```

pub mod dns;
pub mod error;
pub mod file;
mod follow;
pub mod resolve;
pub mod source;
pub mod static_source;
pub mod target;
pub mod update;

pub use dns::{DnsConfig, DnsError, DnsSource};
pub use error::DiscoveryError;
pub use file::{FileError, FileOptions, FileSource};
pub use resolve::{Origin, Plan, Resolution, Resolver};
pub use source::Discover;
pub use static_source::StaticSource;
pub use target::{Target, TargetError};
pub use update::{EndpointSet, Update, UpdateStream};
