//! # mesh-tower: the mesh's HTTP client and server stacks
//!
//! Being built (issue "mesh-tower: the HTTP client and server stacks"). The
//! seams between the layers are in place: request/response extensions
//! ([`ext`]), typed errors ([`error`]), the one outcome classifier
//! ([`classify`]) and the request body type ([`body`]).

pub mod body;
pub mod circuit;
pub mod classify;
pub mod error;
pub mod ext;
pub mod metrics;
pub mod retry;
pub mod server;
pub mod timeout;
pub mod trace;

pub use error::BoxError;
