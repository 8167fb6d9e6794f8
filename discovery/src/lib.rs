//! # mesh-discovery: where endpoints come from
//!
//! Being built (issue "Foundation"): a source trait yielding, per service, a
//! stream of endpoint-set updates, and the static, environment, config-file
//! and DNS sources.
