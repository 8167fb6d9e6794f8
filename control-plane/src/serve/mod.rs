//! serve (stub during store build).
