//! Durations in config files: `250ms`, `2s`, `5m`, `1h`, `1m30s`, `1.5s`.
//!
//! A unit is always required: a bare `250` could mean milliseconds or seconds,
//! and guessing wrong turns a 250 ms timeout into four minutes. Units are `ms`,
//! `s`, `m` and `h`; parts may be combined (`1h30m`) and may carry a decimal
//! fraction (`1.5s`), exact to the nanosecond. [`format_duration`] writes the
//! shortest such text that parses back to the same [`Duration`].

use std::time::Duration;

/// Why a duration text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing given.
    #[error("empty duration; write a number with a unit, e.g. `250ms` or `2s`")]
    Empty,
    /// A minus sign.
    #[error("`{0}` is negative; durations must be zero or more")]
    Negative(String),
    /// A number without a unit.
    #[error("`{0}` has no unit; write e.g. `{0}ms` or `{0}s` (units: ms, s, m, h)")]
    MissingUnit(String),
    /// A unit we do not know.
    #[error("unknown unit `{unit}` in `{text}`; units are ms, s, m, h")]
    UnknownUnit {
        /// The whole text.
        text: String,
        /// The unknown unit.
        unit: String,
    },
    /// Not of the form `<number><unit>...`.
    #[error("`{0}` is not a duration; write e.g. `250ms`, `2s`, `5m`, `1h` or `1m30s`")]
    Syntax(String),
    /// More precise than a nanosecond.
    #[error("`{0}` is more precise than a nanosecond")]
    TooPrecise(String),
    /// Does not fit a [`Duration`].
    #[error("`{0}` is too long")]
    Overflow(String),
}

const NANOS_PER_MS: u128 = 1_000_000;
const UNITS: [(&str, u128); 4] = [
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", NANOS_PER_MS),
];

/// Parses a duration such as `250ms`, `2s`, `5m`, `1h`, `1m30s` or `1.5s`.
///
/// ```
/// use std::time::Duration;
/// use mesh_core::config::parse_duration;
/// assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
/// assert!(parse_duration("250").is_err()); // the unit is required
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.starts_with('-') {
        return Err(DurationError::Negative(s.to_string()));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(DurationError::MissingUnit(s.to_string()));
    }
    let mut total: u128 = 0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(DurationError::Syntax(text.to_string()));
    }
    while !rest.is_empty() {
        let num_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let (num, after) = rest.split_at(num_len);
        let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, after) = after.split_at(unit_len);
        if num.is_empty() {
            return Err(DurationError::Syntax(text.to_string()));
        }
        if unit.is_empty() {
            return Err(if after.is_empty() {
                DurationError::MissingUnit(text.to_string())
            } else {
                DurationError::Syntax(text.to_string())
            });
        }
        let Some(&(_, scale)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(DurationError::UnknownUnit {
                text: text.to_string(),
                unit: unit.to_string(),
            });
        };
        total = total
            .checked_add(part_nanos(num, scale, text)?)
            .ok_or_else(|| DurationError::Overflow(text.to_string()))?;
        rest = after;
    }
    let secs = u64::try_from(total / 1_000_000_000)
        .map_err(|_| DurationError::Overflow(text.to_string()))?;
    // The remainder is below 1e9, so it fits a u32.
    let nanos = u32::try_from(total % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, nanos))
}

/// Nanoseconds of one `<number>` in a unit of `scale` nanoseconds.
fn part_nanos(num: &str, scale: u128, text: &str) -> Result<u128, DurationError> {
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int.is_empty() || frac.contains('.') || (num.contains('.') && frac.is_empty()) {
        return Err(DurationError::Syntax(text.to_string()));
    }
    let overflow = || DurationError::Overflow(text.to_string());
    if int.len() > 30 {
        return Err(overflow());
    }
    let int: u128 = int.parse().map_err(|_| overflow())?;
    let mut nanos = int.checked_mul(scale).ok_or_else(overflow)?;
    let mut place = scale;
    for d in frac.bytes() {
        let digit = u128::from(d - b'0');
        if !place.is_multiple_of(10) {
            if digit != 0 {
                return Err(DurationError::TooPrecise(text.to_string()));
            }
            continue;
        }
        place /= 10;
        nanos = nanos.checked_add(digit * place).ok_or_else(overflow)?;
    }
    Ok(nanos)
}

/// Writes a duration the way config files do: `250ms`, `2s`, `1m30s`,
/// `1h`, `0s`; sub-millisecond parts as a fraction of a millisecond
/// (`1.5ms`). [`parse_duration`] reads it back to the same value.
pub fn format_duration(d: Duration) -> String {
    let mut nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, scale) in UNITS {
        let n = nanos / scale;
        nanos %= scale;
        if unit == "ms" && nanos != 0 {
            let frac = format!("{nanos:06}");
            out.push_str(&format!("{n}.{}ms", frac.trim_end_matches('0')));
            return out;
        }
        if n != 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_units_and_combinations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.0015ms"), Ok(Duration::from_nanos(1500)));
        assert_eq!(parse_duration(" 0s "), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_bad_text_with_a_clear_reason() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert!(matches!(
            parse_duration("-1s"),
            Err(DurationError::Negative(_))
        ));
        let e = parse_duration("250").unwrap_err();
        assert_eq!(e, DurationError::MissingUnit("250".into()));
        assert!(e.to_string().contains("has no unit"), "{e}");
        assert!(matches!(
            parse_duration("3d"),
            Err(DurationError::UnknownUnit { unit, .. }) if unit == "d"
        ));
        assert!(matches!(
            parse_duration("ms"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(
            parse_duration("1.s"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(
            parse_duration("1s 2"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(
            parse_duration("0.0000001ms"),
            Err(DurationError::TooPrecise(_))
        ));
        assert!(matches!(
            parse_duration("99999999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse_duration("5124095576030432h"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn formats_readably() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::from_nanos(1500)), "0.0015ms");
    }

    proptest! {
        #[test]
        fn format_parses_back(secs in 0u64..=u64::MAX / 4, nanos in 0u32..1_000_000_000) {
            let d = Duration::new(secs, nanos);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn never_panics(s in ".{0,24}") {
            let _ = parse_duration(&s);
        }
    }
}
