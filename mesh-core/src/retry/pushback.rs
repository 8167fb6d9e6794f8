//! Server pushback: `Retry-After` (HTTP) and `grpc-retry-pushback-ms` (gRPC).
//!
//! A server that is overloaded can tell clients when to come back. Honouring
//! it matters more than any client-side backoff: the server knows its load.
//!
//! - `Retry-After` (RFC 9110 section 10.2.3) is either `delta-seconds` (a
//!   non-negative integer) or an `HTTP-date`. [`parse_retry_after`] accepts
//!   both; dates in the preferred IMF-fixdate form
//!   (`Sun, 06 Nov 1994 08:49:37 GMT`) and the two obsolete forms recipients
//!   must accept (RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT` and asctime
//!   `Sun Nov  6 08:49:37 1994`). A date in the past means "now" (zero). A
//!   value that is neither is ignored (`None`): the client's own backoff applies.
//! - `grpc-retry-pushback-ms` (gRFC A6): a non-negative integer means "retry
//!   after exactly this many milliseconds"; anything else (negative, not a
//!   number) means "do not retry". [`parse_grpc_pushback`] returns a
//!   [`Pushback`].
//!
//! Pushback replaces the backoff delay; it never makes a non-retryable
//! outcome retryable (see [`RetryPolicy::decide`](super::RetryPolicy::decide)).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the server said about retrying, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pushback {
    /// No pushback: the client's backoff applies.
    #[default]
    None,
    /// Retry after exactly this long (instead of the backoff).
    RetryAfter(Duration),
    /// Do not retry this call.
    DoNotRetry,
}

/// Parses a `Retry-After` value: delta-seconds or an HTTP-date (relative to
/// `now`). `None` if it is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim_matches([' ', '\t']);
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is still "a very long time".
        return Some(Duration::from_secs(
            value.parse::<u64>().unwrap_or(u64::MAX),
        ));
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses a `grpc-retry-pushback-ms` value (gRFC A6).
pub fn parse_grpc_pushback(value: &str) -> Pushback {
    let value = value.trim_matches([' ', '\t']);
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Pushback::DoNotRetry;
    }
    Pushback::RetryAfter(Duration::from_millis(
        value.parse::<u64>().unwrap_or(u64::MAX),
    ))
}

/// Parses an HTTP-date (RFC 9110 section 5.6.7) in any of its three forms.
pub fn parse_http_date(value: &str) -> Option<SystemTime> {
    let v = value.as_bytes();
    let (year, month, day, time) = if v.get(3) == Some(&b',') {
        // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" (exactly 29 bytes).
        if v.len() != 29 || !is_day_name(v.get(..3)?) || &v[4..5] != b" " {
            return None;
        }
        let d = v.get(5..)?;
        if d.get(2) != Some(&b' ') || d.get(6) != Some(&b' ') || d.get(11) != Some(&b' ') {
            return None;
        }
        if d.get(20..) != Some(b" GMT") {
            return None;
        }
        (
            digits(d.get(7..11)?)?,
            month_number(d.get(3..6)?)?,
            digits(d.get(0..2)?)?,
            d.get(12..20)?,
        )
    } else if let Some(comma) = value.find(',') {
        // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT".
        if !is_long_day_name(&value[..comma]) {
            return None;
        }
        let d = v.get(comma + 1..)?;
        if d.len() != 23 || d[0] != b' ' || d[3] != b'-' || d[7] != b'-' || d[10] != b' ' {
            return None;
        }
        if d.get(19..) != Some(b" GMT") {
            return None;
        }
        // Two-digit years, fixed pivot: 70-99 are 19xx, 00-69 are 20xx.
        let yy = digits(d.get(8..10)?)?;
        let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
        (
            year,
            month_number(d.get(4..7)?)?,
            digits(d.get(1..3)?)?,
            d.get(11..19)?,
        )
    } else {
        // asctime: "Sun Nov  6 08:49:37 1994" (exactly 24 bytes).
        if v.len() != 24 || !is_day_name(v.get(..3)?) {
            return None;
        }
        if v[3] != b' ' || v[7] != b' ' || v[10] != b' ' || v[19] != b' ' {
            return None;
        }
        let day = match v.get(8..10)? {
            [b' ', d] => digits(&[*d])?,
            two => digits(two)?,
        };
        (
            digits(v.get(20..24)?)?,
            month_number(v.get(4..7)?)?,
            day,
            v.get(11..19)?,
        )
    };
    let (h, m, s) = parse_time(time)?;
    if !(1..=days_in_month(year, month)).contains(&day) || year < 1970 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + h * 3_600 + m * 60 + s;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// `HH:MM:SS`; second 60 (a leap second) is allowed, as in RFC 9110.
fn parse_time(t: &[u8]) -> Option<(u64, u64, u64)> {
    if t.len() != 8 || t[2] != b':' || t[5] != b':' {
        return None;
    }
    let (h, m, s) = (digits(&t[0..2])?, digits(&t[3..5])?, digits(&t[6..8])?);
    (h < 24 && m < 60 && s <= 60).then_some((h, m, s))
}

/// A fixed-width run of ASCII digits.
fn digits(b: &[u8]) -> Option<u64> {
    if b.is_empty() {
        return None;
    }
    b.iter().try_fold(0u64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u64::from(c - b'0'))
    })
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn is_day_name(b: &[u8]) -> bool {
    DAYS.iter().any(|d| d.as_bytes() == b)
}

fn is_long_day_name(s: &str) -> bool {
    LONG_DAYS.contains(&s)
}

fn month_number(b: &[u8]) -> Option<u64> {
    MONTHS
        .iter()
        .position(|m| m.as_bytes() == b)
        .map(|i| i as u64 + 1)
}

fn is_leap(year: u64) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date on or after it (Howard Hinnant's
/// `days_from_civil`, restricted to non-negative results).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1994-11-06T08:49:37Z, the RFC's example date.
    const RFC_EXAMPLE: u64 = 784_111_777;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn http_date_all_three_forms() {
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_http_date(form), Some(at(RFC_EXAMPLE)), "{form}");
        }
        assert_eq!(
            parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(UNIX_EPOCH)
        );
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 23:59:59 GMT"),
            Some(at(951_868_799))
        );
    }

    #[test]
    fn http_date_garbage_is_refused() {
        for bad in [
            "",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Tue, 29 Feb 1900 00:00:00 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT ",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Funday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 94",
            "ünïcödé, 06 Nov 1994 08:49:37 GMT",
            ",",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn retry_after_delta_seconds() {
        let now = at(RFC_EXAMPLE);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn retry_after_date_is_relative_to_now() {
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(
            parse_retry_after(date, at(RFC_EXAMPLE - 30)),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after(date, at(RFC_EXAMPLE + 30)),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
    }

    #[test]
    fn retry_after_garbage_is_ignored() {
        let now = at(RFC_EXAMPLE);
        for bad in ["", "-5", "1.5", "soon", "+3", "12 s"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn grpc_pushback() {
        assert_eq!(
            parse_grpc_pushback("250"),
            Pushback::RetryAfter(Duration::from_millis(250))
        );
        assert_eq!(
            parse_grpc_pushback("0"),
            Pushback::RetryAfter(Duration::ZERO)
        );
        for bad in ["-1", "", "abc", "1.5", "+3"] {
            assert_eq!(parse_grpc_pushback(bad), Pushback::DoNotRetry, "{bad:?}");
        }
    }
}
