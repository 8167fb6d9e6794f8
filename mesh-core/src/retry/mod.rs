//! Retry policy: which outcomes are retried, exponential backoff with jitter, the retry budget, `Retry-After` and `grpc-retry-pushback-ms`.
//!
//! Being built (issue "Foundation").
