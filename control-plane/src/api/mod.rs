//! REST API (stub during store build).
