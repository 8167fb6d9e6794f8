//! gRPC's `grpc-timeout` header: how a deadline travels on the wire.
//!
//! A gRPC client states how long it will wait as `grpc-timeout: <value><unit>`
//! (at most 8 digits; units `H`, `M`, `S`, `m`, `u`, `n`). mesh-tonic turns a
//! request's `grpc-timeout` into the call's [`Deadline`](crate::ext::Deadline);
//! the per-try [`Timeout`](super::Timeout) then rewrites the header on every
//! attempt to what is left (the attempt's own timeout if shorter), so the
//! server never waits longer than the caller will.

use std::time::Duration;

use http::HeaderValue;

/// The header's name.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

/// The largest value gRPC allows: 8 digits.
const MAX_VALUE: u128 = 99_999_999;

/// Parses a `grpc-timeout` value (`100m`, `5S`, ...); `None` if malformed.
pub fn parse(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    let split = text.len().checked_sub(1)?;
    let (digits, unit) = (text.get(..split)?, text.get(split..)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Encodes `timeout` in the finest unit that fits in 8 digits, rounding
/// down (the server must never see more time than the caller has left);
/// saturates at 99999999 hours.
pub fn encode(timeout: Duration) -> HeaderValue {
    let nanos = timeout.as_nanos();
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    let (value, unit) = units
        .iter()
        .map(|&(per, unit)| (nanos / per, unit))
        .find(|&(value, _)| value <= MAX_VALUE)
        .unwrap_or((MAX_VALUE, 'H'));
    HeaderValue::from_str(&format!("{value}{unit}"))
        .unwrap_or(HeaderValue::from_static("99999999H"))
}

/// Rewrites `req`'s `grpc-timeout` (only if it has one: a gRPC call with a
/// deadline) to `timeout`.
pub(super) fn refresh<B>(req: &mut http::Request<B>, timeout: Option<Duration>) {
    if let Some(timeout) = timeout
        && let Some(value) = req.headers_mut().get_mut(GRPC_TIMEOUT)
    {
        *value = encode(timeout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rounds_down() {
        for (d, text) in [
            (Duration::from_millis(250), "250000u"),
            (Duration::from_nanos(99_999_999), "99999999n"),
            (Duration::from_secs(5), "5000000u"),
            (Duration::from_secs(150), "150000m"),
            (Duration::from_secs(200_000), "200000S"),
            (Duration::ZERO, "0n"),
        ] {
            assert_eq!(encode(d), text, "{d:?}");
            assert_eq!(parse(&encode(d)), Some(d));
        }
        let odd = Duration::from_nanos(123_456_789_123);
        assert!(parse(&encode(odd)).unwrap() <= odd);
        assert_eq!(encode(Duration::MAX), "99999999H");
    }

    #[test]
    fn parses_every_unit_and_rejects_garbage() {
        let p = |s: &'static str| parse(&HeaderValue::from_static(s));
        assert_eq!(p("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(p("2M"), Some(Duration::from_secs(120)));
        assert_eq!(p("3S"), Some(Duration::from_secs(3)));
        assert_eq!(p("4m"), Some(Duration::from_millis(4)));
        assert_eq!(p("5u"), Some(Duration::from_micros(5)));
        assert_eq!(p("6n"), Some(Duration::from_nanos(6)));
        for bad in ["", "m", "123456789m", "12x", "-1m", "1.5S", "S1"] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }
}
