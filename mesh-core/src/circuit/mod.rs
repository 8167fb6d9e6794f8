//! Circuit breaking: concurrency limits (`max_requests`, `max_pending`) that fail fast instead of queueing.
//!
//! Being built (issue "Foundation").
