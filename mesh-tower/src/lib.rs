//! # mesh-tower: the mesh's HTTP client and server stacks
//!
//! Not built yet (issue "mesh-tower: the HTTP client and server stacks").
//! It will hold the tower layers of the request path (metrics and trace,
//! overall timeout, router and traffic split, retry, per-try timeout,
//! discovery-driven balancer with fail-fast concurrency limits, per-endpoint
//! outcome recording) over pooled hyper connections, the server layer, and
//! the entry point `Mesh`.
