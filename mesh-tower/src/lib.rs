//! # mesh-tower: the mesh's HTTP client and server stacks
//!
//! Being built (issue "mesh-tower: the HTTP client and server stacks"). The
//! seams between the layers are in place: request/response extensions
//! ([`ext`]), typed errors ([`error`]), the one outcome classifier
//! ([`classify`]) and the request body type ([`body`]).

pub mod balance;
pub mod body;
pub mod circuit;
pub mod classify;
mod client;
pub mod connect;
pub mod error;
pub mod ext;
mod mesh;
pub mod metrics;
pub mod retry;
pub mod router;
pub mod server;
mod service;
pub mod timeout;
pub mod trace;

pub use client::{MeshClient, ResponseFuture};
pub use error::BoxError;
pub use mesh::{Mesh, MeshBuilder, MeshError};
pub use service::ServiceError;
