//! SQLite persistence for `meshctl serve`: config versions (history and
//! rollback), registered endpoints with TTLs.
//!
//! Being built (issue "Control plane").
