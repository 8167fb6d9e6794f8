//! Routing: match a request's path, method and headers against a service's routes (first match wins) and pick a subset by the route's weighted split.
//!
//! Being built (issue "Foundation").
