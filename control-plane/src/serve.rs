//! `meshctl serve`: opens the store, starts the REST API and the xDS server.
//!
//! Being built (issue "Control plane").
