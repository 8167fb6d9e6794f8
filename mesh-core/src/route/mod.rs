//! Routing: match a request's path, method and headers against a service's
//! routes (first match wins) and pick a subset by the route's weighted split.
//!
//! The router itself is being built (issue "Foundation"); the compiled
//! request matcher shared by routes and L7 intentions is in [`matcher`].

pub mod matcher;

pub use matcher::{RequestMatcher, RequestView, SimpleRequest};
