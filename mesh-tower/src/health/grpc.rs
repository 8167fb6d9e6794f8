//! The `grpc.health.v1` messages, hand-encoded: the probe needs one string
//! field out and one enum field back, not a protobuf runtime.
//!
//! ```text
//! message HealthCheckRequest  { string service = 1; }
//! message HealthCheckResponse { ServingStatus status = 1; }   // SERVING = 1
//! ```
//!
//! Each message travels in a gRPC length-prefixed frame: one compression
//! flag byte (0), a big-endian `u32` length, the message.

use bytes::{BufMut, Bytes, BytesMut};

/// The health-check method's path.
pub const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// `ServingStatus::SERVING`.
pub const SERVING: u64 = 1;

/// A response that is not a well-formed `HealthCheckResponse`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed HealthCheckResponse: {0}")]
pub struct Malformed(pub &'static str);

/// The framed `HealthCheckRequest { service }`.
pub fn encode_request(service: &str) -> Bytes {
    let mut msg = BytesMut::with_capacity(service.len() + 6);
    if !service.is_empty() {
        // Field 1, wire type 2 (length-delimited).
        msg.put_u8(0x0a);
        put_varint(&mut msg, service.len() as u64);
        msg.put_slice(service.as_bytes());
    }
    let mut out = BytesMut::with_capacity(msg.len() + 5);
    out.put_u8(0);
    // A service name longer than 4 GiB is not a thing; saturate anyway.
    out.put_u32(u32::try_from(msg.len()).unwrap_or(u32::MAX));
    out.put_slice(&msg);
    out.freeze()
}

/// The `status` of the framed `HealthCheckResponse` in `body` (0, UNKNOWN,
/// when the field is absent, as protobuf defaults say).
pub fn decode_response(body: &[u8]) -> Result<u64, Malformed> {
    let (flag, rest) = body.split_first().ok_or(Malformed("empty body"))?;
    if *flag != 0 {
        return Err(Malformed("compressed message"));
    }
    let len_bytes: [u8; 4] = rest
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(Malformed("truncated frame header"))?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    let mut msg = rest
        .get(4..4 + len)
        .ok_or(Malformed("frame shorter than its length"))?;
    let mut status = 0;
    while !msg.is_empty() {
        let key = take_varint(&mut msg)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = take_varint(&mut msg)?,
            (_, 0) => {
                take_varint(&mut msg)?;
            }
            (_, 1) => msg = msg.get(8..).ok_or(Malformed("truncated fixed64"))?,
            (_, 2) => {
                let n = usize::try_from(take_varint(&mut msg)?)
                    .map_err(|_| Malformed("length too large"))?;
                msg = msg.get(n..).ok_or(Malformed("truncated field"))?;
            }
            (_, 5) => msg = msg.get(4..).ok_or(Malformed("truncated fixed32"))?,
            _ => return Err(Malformed("unknown wire type")),
        }
    }
    Ok(status)
}

fn put_varint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn take_varint(buf: &mut &[u8]) -> Result<u64, Malformed> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (b, rest) = buf.split_first().ok_or(Malformed("truncated varint"))?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(Malformed("varint longer than 10 bytes"))
}
