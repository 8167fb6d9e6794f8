//! Which outcomes are retried, and after how long.

use std::time::Duration;

use rand::Rng;

use super::backoff::Backoff;
use super::pushback::Pushback;
use crate::config::{RetryConfig, RetryOn};

/// gRPC status `CANCELLED`.
pub const GRPC_CANCELLED: u32 = 1;
/// gRPC status `DEADLINE_EXCEEDED`.
pub const GRPC_DEADLINE_EXCEEDED: u32 = 4;
/// gRPC status `RESOURCE_EXHAUSTED`.
pub const GRPC_RESOURCE_EXHAUSTED: u32 = 8;
/// gRPC status `INTERNAL`.
pub const GRPC_INTERNAL: u32 = 13;
/// gRPC status `UNAVAILABLE`.
pub const GRPC_UNAVAILABLE: u32 = 14;

/// The result of one attempt, as the retry policy sees it (no HTTP types).
///
/// How the layers above map what they observe:
/// - TCP/TLS connect refused, unreachable or timed out: [`Outcome::ConnectFailure`]
///   (nothing was sent, so it is always safe to retry).
/// - The connection or HTTP/2 stream reset or closed before a response
///   (including an `RST_STREAM` with `CANCEL` from the server): [`Outcome::Reset`].
/// - The per-try timeout fired: [`Outcome::Timeout`]. The *whole call's*
///   deadline expiring, or the caller dropping the call, is not an outcome to
///   classify: there is nothing left to retry for.
/// - A response: [`Outcome::Response`] with its HTTP status and, for gRPC,
///   the `grpc-status` (from trailers, or the headers of a trailers-only
///   response; gRPC's HTTP-to-status mapping, e.g. 503 -> `UNAVAILABLE`, is
///   applied by the gRPC layer before this). A server answering
///   `grpc-status: 1` is `Response { status: 200, grpc_status: Some(1) }`
///   and is retried under [`RetryOn::Cancelled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The connection could not be established.
    ConnectFailure,
    /// The connection or stream was reset or closed before a response.
    Reset,
    /// The per-try timeout fired.
    Timeout,
    /// A response arrived.
    Response {
        /// HTTP status code.
        status: u16,
        /// gRPC status code, for gRPC calls.
        grpc_status: Option<u32>,
    },
}

/// Why a failed attempt is not retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopReason {
    /// No `on` condition covers this outcome (successes included).
    NotRetryable,
    /// The method is not idempotent and `non_idempotent` is off.
    NonIdempotent,
    /// The configured number of attempts has been made.
    AttemptsExhausted,
    /// The server said not to retry (`grpc-retry-pushback-ms` negative or invalid).
    ServerPushback,
    /// The delay before the retry is not shorter than what is left of the deadline.
    DeadlineTooShort,
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Retry after this delay (the backoff, or the server's pushback).
    RetryAfter(Duration),
    /// Do not retry.
    Stop(StopReason),
}

/// Everything known about an attempt that just finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt<'a> {
    /// Its outcome.
    pub outcome: Outcome,
    /// Its number: 1 for the first attempt.
    pub number: u32,
    /// The request method (`GET`, ...; case-sensitive, as in RFC 9110).
    pub method: &'a str,
    /// What the server said about retrying (see [`super::pushback`]).
    pub pushback: Pushback,
    /// What is left of the whole call's deadline; `None`: no deadline.
    pub remaining: Option<Duration>,
}

/// A compiled [`RetryConfig`]: conditions as bit flags, listed status codes
/// as a bitmap, so a decision is a few branches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    attempts: u32,
    flags: u16,
    /// Bit `c` set: HTTP status `c` (`c < 1024`) is listed.
    statuses: [u64; 16],
    non_idempotent: bool,
    backoff: Backoff,
    per_try_timeout: Option<Duration>,
}

const CONNECT_FAILURE: u16 = 1 << 0;
const RESET: u16 = 1 << 1;
const SERVER_5XX: u16 = 1 << 2;
const GATEWAY_ERROR: u16 = 1 << 3;
const CANCELLED: u16 = 1 << 4;
const DEADLINE_EXCEEDED: u16 = 1 << 5;
const RESOURCE_EXHAUSTED: u16 = 1 << 6;
const INTERNAL: u16 = 1 << 7;
const UNAVAILABLE: u16 = 1 << 8;

/// Whether `method` is idempotent (RFC 9110 section 9.2.2): GET, HEAD,
/// OPTIONS, TRACE, PUT and DELETE. POST, PATCH, CONNECT and unknown methods
/// are not. Methods are case-sensitive.
pub fn is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
    )
}

// === impl RetryPolicy ===

impl RetryPolicy {
    /// Compiles `config`. `attempts: 0` is treated as 1 (never retry).
    pub fn new(config: &RetryConfig) -> Self {
        let mut flags = 0;
        let mut statuses = [0u64; 16];
        for on in &config.on {
            flags |= match on {
                RetryOn::ConnectFailure => CONNECT_FAILURE,
                RetryOn::Reset => RESET,
                RetryOn::Server5xx => SERVER_5XX,
                RetryOn::GatewayError => GATEWAY_ERROR,
                RetryOn::Cancelled => CANCELLED,
                RetryOn::DeadlineExceeded => DEADLINE_EXCEEDED,
                RetryOn::ResourceExhausted => RESOURCE_EXHAUSTED,
                RetryOn::Internal => INTERNAL,
                RetryOn::Unavailable => UNAVAILABLE,
                RetryOn::Status(code) => {
                    if let Some(word) = statuses.get_mut(usize::from(*code) / 64) {
                        *word |= 1 << (code % 64);
                    }
                    0
                }
            };
        }
        Self {
            attempts: config.attempts.max(1),
            flags,
            statuses,
            non_idempotent: config.non_idempotent,
            backoff: Backoff::new(&config.backoff),
            per_try_timeout: config.per_try_timeout,
        }
    }

    /// Whether any condition looks at a response's gRPC status
    /// (`cancelled`, `deadline-exceeded`, `resource-exhausted`, `internal`,
    /// `unavailable`): without one, the `grpc-status` header need not be
    /// read to decide.
    pub fn reads_grpc_status(&self) -> bool {
        self.flags & (CANCELLED | DEADLINE_EXCEEDED | RESOURCE_EXHAUSTED | INTERNAL | UNAVAILABLE)
            != 0
    }

    /// Total attempts allowed, the first included (at least 1).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The per-try timeout, if any.
    pub fn per_try_timeout(&self) -> Option<Duration> {
        self.per_try_timeout
    }

    /// The backoff between attempts.
    pub fn backoff(&self) -> &Backoff {
        &self.backoff
    }

    /// Whether an `on` condition covers `outcome`, with Envoy's semantics:
    /// `5xx` covers 5xx responses, connect failures, resets and per-try
    /// timeouts; `gateway-error` covers 502, 503, 504 and per-try timeouts;
    /// `reset` covers resets and per-try timeouts; listed codes match the
    /// HTTP status; gRPC conditions match the `grpc-status`.
    pub fn is_retryable(&self, outcome: &Outcome) -> bool {
        let f = self.flags;
        match *outcome {
            Outcome::ConnectFailure => f & (CONNECT_FAILURE | SERVER_5XX) != 0,
            Outcome::Reset => f & (RESET | SERVER_5XX) != 0,
            Outcome::Timeout => f & (RESET | SERVER_5XX | GATEWAY_ERROR) != 0,
            Outcome::Response {
                status,
                grpc_status,
            } => {
                let http = (f & SERVER_5XX != 0 && (500..600).contains(&status))
                    || (f & GATEWAY_ERROR != 0 && matches!(status, 502..=504))
                    || self
                        .statuses
                        .get(usize::from(status) / 64)
                        .is_some_and(|w| w & (1 << (status % 64)) != 0);
                let grpc = match grpc_status {
                    Some(GRPC_CANCELLED) => f & CANCELLED != 0,
                    Some(GRPC_DEADLINE_EXCEEDED) => f & DEADLINE_EXCEEDED != 0,
                    Some(GRPC_RESOURCE_EXHAUSTED) => f & RESOURCE_EXHAUSTED != 0,
                    Some(GRPC_INTERNAL) => f & INTERNAL != 0,
                    Some(GRPC_UNAVAILABLE) => f & UNAVAILABLE != 0,
                    _ => false,
                };
                http || grpc
            }
        }
    }

    /// Whether attempt number `attempt` (1 for the first) that ended with
    /// `outcome` may be retried: a condition covers it, the method allows it,
    /// and attempts remain. Returns [`Decision::RetryAfter`] with a zero delay
    /// or [`Decision::Stop`]; [`RetryPolicy::decide`] adds the delay.
    ///
    /// The method matters only for HTTP semantics: a connect failure is
    /// always safe (nothing was sent), and so is an answer carrying a gRPC
    /// status, where the code itself says whether retrying is safe (every
    /// gRPC call is a POST; gRPC's own retry policy, gRFC A6, retries by the
    /// configured codes whatever the method).
    pub fn should_retry(&self, outcome: Outcome, attempt: u32, method: &str) -> Decision {
        let method_free = matches!(
            outcome,
            Outcome::ConnectFailure
                | Outcome::Response {
                    grpc_status: Some(_),
                    ..
                }
        );
        if !self.is_retryable(&outcome) {
            Decision::Stop(StopReason::NotRetryable)
        } else if !method_free && !self.non_idempotent && !is_idempotent(method) {
            Decision::Stop(StopReason::NonIdempotent)
        } else if attempt >= self.attempts {
            Decision::Stop(StopReason::AttemptsExhausted)
        } else {
            Decision::RetryAfter(Duration::ZERO)
        }
    }

    /// The full decision after an attempt: [`should_retry`](Self::should_retry),
    /// then the delay: the server's pushback if it gave one (a "do not
    /// retry" pushback stops), else the backoff for retry number
    /// `attempt.number`. A delay not shorter than the remaining deadline stops.
    pub fn decide<G: Rng + ?Sized>(&self, attempt: &Attempt<'_>, rng: &mut G) -> Decision {
        if let stop @ Decision::Stop(_) =
            self.should_retry(attempt.outcome, attempt.number, attempt.method)
        {
            return stop;
        }
        let delay = match attempt.pushback {
            Pushback::DoNotRetry => return Decision::Stop(StopReason::ServerPushback),
            Pushback::RetryAfter(d) => d,
            Pushback::None => self.backoff.delay(attempt.number, rng),
        };
        match attempt.remaining {
            Some(left) if delay >= left => Decision::Stop(StopReason::DeadlineTooShort),
            _ => Decision::RetryAfter(delay),
        }
    }
}
