//! gRPC's `grpc-timeout` header: how a deadline travels on the wire.
//!
//! A gRPC client states how long it will wait as `grpc-timeout: <value><unit>`
//! (at most 8 digits; units `H`, `M`, `S`, `m`, `u`, `n`). mesh-tonic turns a
//! request's `grpc-timeout` into the call's [`Deadline`](crate::ext::Deadline);
//! the per-try [`Timeout`](super::Timeout) then sets the header on every
//! attempt to what is left (the attempt's own timeout if shorter), so the
//! server never waits longer than the caller will. A gRPC request (by its
//! `content-type`) without the header gets it as soon as a deadline or an
//! attempt timeout applies: a service's or route's `timeout` reaches the
//! server even when the caller set no deadline.

use std::time::Duration;

use http::HeaderValue;

/// The header's name.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

/// [`GRPC_TIMEOUT`] as a prebuilt name (a `&str` key is parsed on every
/// lookup).
pub(crate) const GRPC_TIMEOUT_NAME: http::HeaderName = http::HeaderName::from_static(GRPC_TIMEOUT);

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
/// saturates at 99999999 hours. Written straight into the value's bytes
/// (no formatting machinery: every attempt of a call with a deadline
/// encodes one).
pub fn encode(timeout: Duration) -> HeaderValue {
    let nanos = timeout.as_nanos();
    const UNITS: [(u128, u8); 6] = [
        (1, b'n'),
        (1_000, b'u'),
        (1_000_000, b'm'),
        (1_000_000_000, b'S'),
        (60_000_000_000, b'M'),
        (3_600_000_000_000, b'H'),
    ];
    let (value, unit) = UNITS
        .iter()
        .map(|&(per, unit)| (nanos / per, unit))
        .find(|&(value, _)| value <= MAX_VALUE)
        .unwrap_or((MAX_VALUE, b'H'));
    // At most 8 digits (`value <= MAX_VALUE`) and the unit, written from
    // the end.
    let mut value = u32::try_from(value).unwrap_or(99_999_999);
    let mut buf = [unit; 9];
    let mut at = buf.len() - 1;
    while at > 0 {
        at -= 1;
        if let Some(digit) = buf.get_mut(at) {
            // `value % 10` is a single digit.
            *digit = b'0' + (value % 10) as u8;
        }
        value /= 10;
        if value == 0 {
            break;
        }
    }
    HeaderValue::from_bytes(buf.get(at..).unwrap_or_default())
        .unwrap_or(HeaderValue::from_static("99999999H"))
}

/// Sets `req`'s `grpc-timeout` to `timeout` if `req` is a gRPC call (it
/// has a `grpc-timeout` already, or a `content-type` of `application/grpc`
/// or `application/grpc+<codec>`): every attempt of a call with a deadline
/// tells the server how long it has, also when the deadline came from the
/// service's or route's `timeout` rather than from the caller.
pub(crate) fn refresh<B>(req: &mut http::Request<B>, timeout: Option<Duration>) {
    let Some(timeout) = timeout else {
        return;
    };
    // The content type first (a standard header: the cheap lookup). A gRPC
    // call gets the header set; anything else only has one it carries
    // refreshed (a lookup that reserves no room, unlike `entry`).
    let headers = req.headers_mut();
    if is_grpc(headers) || headers.contains_key(GRPC_TIMEOUT_NAME) {
        headers.insert(GRPC_TIMEOUT_NAME, encoded(timeout));
    }
}

/// [`encode`], remembering the last value per thread: the attempts of a
/// route mostly send the same timeout (the per-try timeout, while the
/// call's deadline is further away), and a clone shares the bytes.
fn encoded(timeout: Duration) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::Cell<Option<(Duration, HeaderValue)>> =
            const { std::cell::Cell::new(None) };
    }
    LAST.with(|last| {
        let value = match last.take() {
            Some((at, value)) if at == timeout => value,
            _ => {
                let mut value = encode(timeout);
                // What is left of a deadline is a one-off value (to the
                // nanosecond): HPACK would add each to both ends' dynamic
                // tables, evicting the entries that do repeat. Sent as a
                // never-indexed literal. A configured timeout (whole
                // milliseconds) repeats, and is indexed.
                if !timeout.subsec_nanos().is_multiple_of(1_000_000) {
                    value.set_sensitive(true);
                }
                value
            }
        };
        last.set(Some((timeout, value.clone())));
        value
    })
}

/// Whether `headers` are a gRPC request's (`content-type: application/grpc`,
/// optionally `+codec` or `;params`).
fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.as_bytes().get(..16))
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(b"application/grpc"))
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
    fn encodes_as_formatting_would() {
        // The digits written by hand match `format!` over every magnitude.
        let mut nanos: u64 = 0;
        while nanos < u64::MAX / 3 {
            let d = Duration::from_nanos(nanos);
            let ns = d.as_nanos();
            let (value, unit) = [
                (1, 'n'),
                (1_000, 'u'),
                (1_000_000, 'm'),
                (1_000_000_000, 'S'),
            ]
            .iter()
            .chain(&[(60_000_000_000, 'M'), (3_600_000_000_000, 'H')])
            .map(|&(per, unit)| (ns / per, unit))
            .find(|&(v, _)| v <= MAX_VALUE)
            .unwrap_or((MAX_VALUE, 'H'));
            assert_eq!(encode(d), format!("{value}{unit}").as_str(), "{d:?}");
            nanos = nanos * 3 + 7;
        }
    }

    /// A gRPC call's request, without a `grpc-timeout`.
    fn grpc() -> http::Request<()> {
        http::Request::post("/helloworld.Greeter/SayHello")
            .header("content-type", "application/grpc+proto")
            .body(())
            .unwrap()
    }

    #[test]
    fn a_grpc_request_gets_the_header_and_plain_http_does_not() {
        let mut req = grpc();
        refresh(&mut req, Some(Duration::from_millis(250)));
        assert_eq!(req.headers()[GRPC_TIMEOUT], "250000u");
        let mut req = grpc();
        refresh(&mut req, None);
        assert!(req.headers().get(GRPC_TIMEOUT).is_none());
        let mut req = http::Request::post("/x")
            .header("content-type", "application/json")
            .body(())
            .unwrap();
        refresh(&mut req, Some(Duration::from_secs(1)));
        assert!(req.headers().get(GRPC_TIMEOUT).is_none());
        let mut req = http::Request::post("/x")
            .header(GRPC_TIMEOUT, "5S")
            .body(())
            .unwrap();
        refresh(&mut req, Some(Duration::from_secs(1)));
        assert_eq!(req.headers()[GRPC_TIMEOUT], "1000000u");
    }

    #[test]
    fn one_off_values_are_never_indexed() {
        // A configured timeout repeats: HPACK may index it.
        let mut req = grpc();
        refresh(&mut req, Some(Duration::from_millis(1500)));
        assert!(!req.headers()[GRPC_TIMEOUT].is_sensitive());
        // What is left of a deadline is a one-off.
        let mut req = grpc();
        refresh(&mut req, Some(Duration::from_nanos(1_499_873_021)));
        assert_eq!(req.headers()[GRPC_TIMEOUT], "1499873u");
        assert!(req.headers()[GRPC_TIMEOUT].is_sensitive());
        // The same again (the per-thread cache) is still marked.
        let mut req = grpc();
        refresh(&mut req, Some(Duration::from_nanos(1_499_873_021)));
        assert!(req.headers()[GRPC_TIMEOUT].is_sensitive());
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
