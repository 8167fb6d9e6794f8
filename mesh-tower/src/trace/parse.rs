//! The W3C grammars, byte by byte: no allocation, no panics on any input.

use super::{SpanId, TRACEPARENT_LEN, TraceFlags, TraceId, TraceParent};

/// Why a `traceparent` header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceParseError {
    /// Shorter than 55 bytes, or (version 00) longer.
    #[error("traceparent is {0} bytes long, expected 55")]
    Length(usize),
    /// A `-` is missing where the grammar puts one.
    #[error("traceparent has no `-` at byte {0}")]
    Delimiter(usize),
    /// Not two lowercase hex digits, or the forbidden version `ff`.
    #[error("traceparent version is invalid")]
    Version,
    /// Not 32 lowercase hex digits, or all zeros.
    #[error("traceparent trace-id is invalid (32 lowercase hex digits, not all zero)")]
    TraceId,
    /// Not 16 lowercase hex digits, or all zeros.
    #[error("traceparent parent-id is invalid (16 lowercase hex digits, not all zero)")]
    ParentId,
    /// Not two lowercase hex digits.
    #[error("traceparent trace-flags are invalid")]
    Flags,
    /// The request carries more than one `traceparent` header.
    #[error("more than one traceparent header")]
    Repeated,
}

/// Why a `tracestate` header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceStateError {
    /// More than 32 list members.
    #[error("tracestate has {0} members, at most 32 allowed")]
    TooManyMembers(usize),
    /// A member is not `key=value` by the W3C grammar.
    #[error("tracestate member {0} is not a valid key=value")]
    InvalidMember(usize),
    /// A key appears twice.
    #[error("tracestate key of member {0} is repeated")]
    DuplicateKey(usize),
    /// The value has bytes outside visible ASCII.
    #[error("tracestate is not visible ASCII")]
    NotVisibleAscii,
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Decodes lowercase hex from `src` into `out` (`src.len() == 2 * out.len()`).
fn decode(src: &[u8], out: &mut [u8]) -> Option<()> {
    if src.len() != out.len() * 2 {
        return None;
    }
    for (o, pair) in out.iter_mut().zip(src.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *o = (hex_digit(*hi)? << 4) | hex_digit(*lo)?;
    }
    Some(())
}

pub(super) fn traceparent(s: &[u8]) -> Result<TraceParent, TraceParseError> {
    // Surrounding optional whitespace is not part of the value.
    let s = s.trim_ascii();
    if s.len() < TRACEPARENT_LEN {
        return Err(TraceParseError::Length(s.len()));
    }
    let mut version = [0u8; 1];
    decode(s.get(0..2).unwrap_or_default(), &mut version).ok_or(TraceParseError::Version)?;
    let [version] = version;
    if version == 0xff {
        return Err(TraceParseError::Version);
    }
    if version == 0 && s.len() != TRACEPARENT_LEN {
        return Err(TraceParseError::Length(s.len()));
    }
    for at in [2, 35, 52] {
        if s.get(at) != Some(&b'-') {
            return Err(TraceParseError::Delimiter(at));
        }
    }
    // A future version may append fields after another `-`.
    if s.len() > TRACEPARENT_LEN && s.get(TRACEPARENT_LEN) != Some(&b'-') {
        return Err(TraceParseError::Delimiter(TRACEPARENT_LEN));
    }
    let mut trace_id = [0u8; 16];
    decode(s.get(3..35).unwrap_or_default(), &mut trace_id).ok_or(TraceParseError::TraceId)?;
    let trace_id = TraceId(trace_id);
    if trace_id.is_zero() {
        return Err(TraceParseError::TraceId);
    }
    let mut parent = [0u8; 8];
    decode(s.get(36..52).unwrap_or_default(), &mut parent).ok_or(TraceParseError::ParentId)?;
    let parent_id = SpanId(parent);
    if parent_id.is_zero() {
        return Err(TraceParseError::ParentId);
    }
    let mut flags = [0u8; 1];
    decode(s.get(53..55).unwrap_or_default(), &mut flags).ok_or(TraceParseError::Flags)?;
    let [flags] = flags;
    Ok(TraceParent {
        version,
        trace_id,
        parent_id,
        flags: TraceFlags(flags),
    })
}

const MAX_MEMBERS: usize = 32;

fn is_lcalpha(b: u8) -> bool {
    b.is_ascii_lowercase()
}

fn is_key_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/')
}

/// `simple-key` or `tenant-id@system-id`.
fn valid_key(k: &[u8]) -> bool {
    match k.iter().position(|&b| b == b'@') {
        None => {
            matches!(k.first(), Some(&b) if is_lcalpha(b))
                && k.len() <= 256
                && k.iter().all(|&b| is_key_char(b))
        }
        Some(at) => {
            let (tenant, system) = (
                k.get(..at).unwrap_or_default(),
                k.get(at + 1..).unwrap_or_default(),
            );
            matches!(tenant.first(), Some(&b) if is_lcalpha(b) || b.is_ascii_digit())
                && tenant.len() <= 241
                && tenant.iter().all(|&b| is_key_char(b))
                && matches!(system.first(), Some(&b) if is_lcalpha(b))
                && system.len() <= 14
                && system.iter().all(|&b| is_key_char(b))
        }
    }
}

/// `0*255(chr) nblk-chr`: printable ASCII but `,` and `=`, no trailing space.
fn valid_value(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= 256
        && v.iter()
            .all(|&b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
        && v.last() != Some(&b' ')
}

pub(super) fn tracestate(s: &[u8]) -> Result<(), TraceStateError> {
    if !s.iter().all(|&b| b == b'\t' || (0x20..=0x7e).contains(&b)) {
        return Err(TraceStateError::NotVisibleAscii);
    }
    let mut keys: [&[u8]; MAX_MEMBERS] = [&[]; MAX_MEMBERS];
    let mut n = 0usize;
    for (i, member) in s.split(|&b| b == b',').enumerate() {
        let member = member.trim_ascii();
        if member.is_empty() {
            continue; // empty list members are allowed
        }
        let Some(eq) = member.iter().position(|&b| b == b'=') else {
            return Err(TraceStateError::InvalidMember(i));
        };
        let key = member.get(..eq).unwrap_or_default();
        let value = member.get(eq + 1..).unwrap_or_default();
        if !valid_key(key) || !valid_value(value) {
            return Err(TraceStateError::InvalidMember(i));
        }
        if keys.get(..n).unwrap_or_default().contains(&key) {
            return Err(TraceStateError::DuplicateKey(i));
        }
        match keys.get_mut(n) {
            Some(slot) => *slot = key,
            None => return Err(TraceStateError::TooManyMembers(n + 1)),
        }
        n += 1;
    }
    Ok(())
}
