//! # mesh-examples: runnable services and tools
//!
//! Not built yet (issue "Example services, mesh-demo and mesh-bench"). It will
//! hold the binaries `news-service`, `app-ui`, `greeter-server`,
//! `greeter-client`, `mesh-demo` and `mesh-bench`, written against the public
//! API only.
