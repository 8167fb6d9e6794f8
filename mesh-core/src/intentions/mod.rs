//! Intentions: Consul-style authorization (L4 and L7) evaluated for a source identity and a request.
//!
//! Being built (issue "Foundation").
