//! W3C Trace Context propagation: `traceparent` and `tracestate`.
//!
//! The mesh records no spans itself; it carries the trace across the hop so
//! that whatever tracer the services run (OpenTelemetry, Jaeger, ...) sees one
//! trace end to end, as a sidecar would.
//!
//! - **Server side** ([`extract`], done by [`crate::server::ServerLayer`]):
//!   a valid incoming `traceparent` (and its `tracestate`) becomes a
//!   [`TraceContext`] in the request's extensions. A malformed header is
//!   ignored, as the W3C spec asks: the trace restarts at this service.
//! - **Client side** (done by [`crate::metrics::MetricsLayer`]):
//!   a request that already has a `traceparent` header is left alone (the
//!   application propagates itself). Otherwise, if it carries a
//!   [`TraceContext`] extension (the application copied the incoming one
//!   over), the trace continues: same trace id and flags, a new span id as
//!   the parent id. Else, by default (`MESH_TRACE=propagate`), the request
//!   goes out with no trace context; with `MESH_TRACE=originate` a new
//!   trace starts ([`inject`] does that for any request).
//!
//! Ids come from an [`IdGenerator`]: [`RandomIds`] (a per-thread fast RNG,
//! randomly seeded) by default, [`SeededIds`] for deterministic tests.
//!
//! ```
//! use mesh_tower::trace::{TraceParent, TraceContext};
//!
//! let tp: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse()?;
//! assert!(tp.flags.is_sampled());
//! assert_eq!(tp.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
//! # Ok::<(), mesh_tower::trace::TraceParseError>(())
//! ```
//!
//! Continuing a trace from an axum handler:
//!
//! ```
//! use mesh_tower::trace::TraceContext;
//!
//! fn outgoing(incoming: &http::Request<()>) -> http::Request<()> {
//!     let mut out = http::Request::new(());
//!     if let Some(ctx) = incoming.extensions().get::<TraceContext>() {
//!         out.extensions_mut().insert(ctx.clone());
//!     }
//!     out // the mesh client injects `traceparent` from the extension
//! }
//! # let _ = outgoing(&http::Request::new(()));
//! ```

mod ids;
mod parse;
#[cfg(test)]
mod tests;

use std::fmt;

use http::HeaderValue;

pub use ids::{IdGenerator, RandomIds, SeededIds};
pub use parse::{TraceParseError, TraceStateError};

/// The `traceparent` header name.
pub const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
/// The `tracestate` header name.
pub const TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");

/// A 16-byte trace id (never all zeros when parsed or generated).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span (parent) id (never all zeros when parsed or generated).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(pub [u8; 8]);

/// The `trace-flags` byte; bit 0 is `sampled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TraceFlags(pub u8);

/// A parsed `traceparent`: `version-traceid-parentid-flags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The version byte (`00` today; higher versions are parsed by their
    /// version-00 prefix, as the spec asks, and formatted as `00`).
    pub version: u8,
    /// The trace.
    pub trace_id: TraceId,
    /// The caller's span.
    pub parent_id: SpanId,
    /// Flags (sampled).
    pub flags: TraceFlags,
}

/// A validated `tracestate` header: vendor entries, kept as received (cheap
/// to clone, forwarded byte for byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceState(HeaderValue);

/// The trace context of a request: set in request extensions by the server
/// layer, read by the client's injection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// The incoming (or current) `traceparent`.
    pub parent: TraceParent,
    /// Its `tracestate`, when present and valid.
    pub state: Option<TraceState>,
}

// === impl TraceId / SpanId ===

impl TraceId {
    /// Whether all bytes are zero (invalid on the wire).
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }
}

impl SpanId {
    /// Whether all bytes are zero (invalid on the wire).
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 8]
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Two lowercase hex digits per byte value, built at compile time.
const HEX_PAIRS: [[u8; 2]; 256] = {
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX[i >> 4], HEX[i & 0x0f]];
        i += 1;
    }
    t
};

fn write_hex(out: &mut [u8], bytes: &[u8]) {
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(*b)]);
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 32];
        write_hex(&mut buf, &self.0);
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 16];
        write_hex(&mut buf, &self.0);
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

// === impl TraceFlags ===

impl TraceFlags {
    /// Only the sampled bit set.
    pub const SAMPLED: TraceFlags = TraceFlags(0x01);

    /// Whether the caller may have recorded the trace.
    pub fn is_sampled(self) -> bool {
        self.0 & 0x01 == 0x01
    }
}

// === impl TraceParent ===

/// Length of a version-00 `traceparent`.
pub const TRACEPARENT_LEN: usize = 55;

impl TraceParent {
    /// A new trace: fresh trace and span ids from `ids`, with `flags`.
    pub fn new_root(ids: &dyn IdGenerator, flags: TraceFlags) -> TraceParent {
        let (trace_id, parent_id) = ids.trace_and_span_id();
        TraceParent {
            version: 0,
            trace_id,
            parent_id,
            flags,
        }
    }

    /// The same trace with a fresh span id from `ids` as the parent: what a
    /// client sends downstream when continuing this context.
    pub fn child(&self, ids: &dyn IdGenerator) -> TraceParent {
        TraceParent {
            version: 0,
            trace_id: self.trace_id,
            parent_id: ids.span_id(),
            flags: self.flags,
        }
    }

    /// The version-00 wire form, without allocating.
    pub fn to_bytes(&self) -> [u8; TRACEPARENT_LEN] {
        let mut b = [b'-'; TRACEPARENT_LEN];
        b[0] = b'0';
        b[1] = b'0';
        write_hex(&mut b[3..35], &self.trace_id.0);
        write_hex(&mut b[36..52], &self.parent_id.0);
        write_hex(&mut b[53..55], &[self.flags.0]);
        b
    }

    /// The header value (version 00).
    pub fn to_header_value(&self) -> HeaderValue {
        // Lowercase hex and dashes: always a valid header value. Owned by
        // one shared allocation, so the retry layer's copies of the request
        // head share it instead of copying (a `Vec`-backed value would be
        // reallocated on its first clone).
        HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(self.to_bytes()))
            .unwrap_or(HeaderValue::from_static(""))
    }

    /// Parses a header value.
    pub fn from_header(value: &HeaderValue) -> Result<TraceParent, TraceParseError> {
        parse::traceparent(value.as_bytes())
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.to_bytes();
        f.write_str(std::str::from_utf8(&b).map_err(|_| fmt::Error)?)
    }
}

impl std::str::FromStr for TraceParent {
    type Err = TraceParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse::traceparent(s.as_bytes())
    }
}

// === impl TraceState ===

impl TraceState {
    /// Validates a `tracestate` header value (at most 32 members, each
    /// `key=value` by the W3C grammar, no duplicate keys).
    pub fn from_header(value: &HeaderValue) -> Result<TraceState, TraceStateError> {
        parse::tracestate(value.as_bytes())?;
        Ok(TraceState(value.clone()))
    }

    /// The header value, as received.
    pub fn as_header_value(&self) -> &HeaderValue {
        &self.0
    }

    /// The `(key, value)` members, in order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        std::str::from_utf8(self.0.as_bytes())
            .unwrap_or("")
            .split(',')
            .map(|m| m.trim_matches([' ', '\t']))
            .filter(|m| !m.is_empty())
            .filter_map(|m| m.split_once('='))
    }
}

impl std::str::FromStr for TraceState {
    type Err = TraceStateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let v = HeaderValue::from_str(s).map_err(|_| TraceStateError::NotVisibleAscii)?;
        TraceState::from_header(&v)
    }
}

// === extract / inject ===

/// Reads the request's `traceparent` (and `tracestate`): `Ok(None)` when
/// absent, a typed error when malformed. A malformed `tracestate` next to a
/// valid `traceparent` is dropped (the spec's advice), not an error.
pub fn extract(headers: &http::HeaderMap) -> Result<Option<TraceContext>, TraceParseError> {
    let mut values = headers.get_all(TRACEPARENT).iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(TraceParseError::Repeated);
    }
    let parent = TraceParent::from_header(v)?;
    let state = combined_tracestate(headers);
    Ok(Some(TraceContext { parent, state }))
}

fn combined_tracestate(headers: &http::HeaderMap) -> Option<TraceState> {
    let mut all = headers.get_all(TRACESTATE).iter();
    let first = all.next()?;
    match all.next() {
        None => TraceState::from_header(first).ok(),
        Some(second) => {
            // Several header lines form one list (RFC 9110 5.3); rare, so
            // joining allocates.
            let mut joined = first.as_bytes().to_vec();
            for v in std::iter::once(second).chain(all) {
                joined.push(b',');
                joined.extend_from_slice(v.as_bytes());
            }
            let v = HeaderValue::from_bytes(&joined).ok()?;
            TraceState::from_header(&v).ok()
        }
    }
}

/// Sets `traceparent` (and `tracestate`) on an outgoing request, unless it
/// already has a `traceparent`: continues the [`TraceContext`] extension if
/// there is one, else starts a new trace with `new_flags`.
pub fn inject<B>(request: &mut http::Request<B>, ids: &dyn IdGenerator, new_flags: TraceFlags) {
    if let Some(outgoing) = outgoing(request, ids, new_flags, true) {
        outgoing.set(request.headers_mut());
    }
}

/// The trace context a request goes out with (see [`inject`]).
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    parent: TraceParent,
    state: Option<TraceState>,
}

/// What [`inject`] would set on `request`; `None` when it has its own
/// `traceparent`, or no trace context and `originate` is off.
pub(crate) fn outgoing<B>(
    request: &http::Request<B>,
    ids: &dyn IdGenerator,
    new_flags: TraceFlags,
    originate: bool,
) -> Option<Outgoing> {
    if request.headers().contains_key(TRACEPARENT) {
        return None;
    }
    match request.extensions().get::<TraceContext>() {
        Some(ctx) => Some(Outgoing {
            parent: ctx.parent.child(ids),
            state: ctx.state.clone(),
        }),
        None if originate => Some(Outgoing {
            parent: TraceParent::new_root(ids, new_flags),
            state: None,
        }),
        None => None,
    }
}

impl Outgoing {
    /// Sets the headers (each attempt of a call carries the same).
    pub(crate) fn set(&self, headers: &mut http::HeaderMap) {
        // Unique per request: over HTTP/2, HPACK would add every value to
        // both ends' dynamic tables, evicting the headers that do repeat.
        // Sensitive values are sent as never-indexed literals.
        let mut value = self.parent.to_header_value();
        value.set_sensitive(true);
        headers.insert(TRACEPARENT, value);
        if let Some(s) = &self.state {
            headers.insert(TRACESTATE, s.0.clone());
        }
    }
}
