//! Time: segment file names, the clocks that logic gets injected, and UTC formatting.
//!
//! Invariants: every time value carries its unit in its name (`start_ms`, `duration_us`);
//! segment names are always UTC; wall-clock time is read only through a [`Clock`].

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::Offset;

/// The two clocks. The wall clock stamps segments and ages recordings; the monotonic one times
/// timeouts, backoff and the watchdog. Tests substitute a simulated clock.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
    fn monotonic(&self) -> Instant;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        }
    }

    fn monotonic(&self) -> Instant {
        Instant::now()
    }
}

/// `YYYY-mm-dd_HH-MM-SS.mp4` (UTC) → milliseconds since the Unix epoch.
pub fn parse_segment_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".mp4")?;
    let b = stem.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'_'
        || b[13] != b'-'
        || b[16] != b'-'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i16> {
        let s = &b[r];
        if !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        s.iter().try_fold(0i16, |acc, d| {
            acc.checked_mul(10)?.checked_add(i16::from(d - b'0'))
        })
    };
    let dt = DateTime::new(
        num(0..4)?,
        i8::try_from(num(5..7)?).ok()?,
        i8::try_from(num(8..10)?).ok()?,
        i8::try_from(num(11..13)?).ok()?,
        i8::try_from(num(14..16)?).ok()?,
        i8::try_from(num(17..19)?).ok()?,
        0,
    )
    .ok()?;
    Some(Offset::UTC.to_timestamp(dt).ok()?.as_millisecond())
}

/// The file name of a segment starting at `start_ms` (UTC, whole seconds).
pub fn segment_name(start_ms: i64) -> String {
    match Timestamp::from_millisecond(start_ms) {
        Ok(ts) => format!("{}.mp4", ts.strftime("%Y-%m-%d_%H-%M-%S")),
        Err(_) => format!("invalid-{start_ms}.mp4"),
    }
}

/// RFC 3339 UTC with as many fractional digits as needed (`2026-01-01T12:00:00.04Z`).
pub fn rfc3339_us(t_us: i64) -> String {
    match Timestamp::from_microsecond(t_us) {
        Ok(ts) => ts.to_string(),
        Err(_) => String::from("invalid"),
    }
}

/// A time in a query: RFC 3339 (`2026-01-01T12:00:00Z`, fractions allowed) or Unix seconds
/// (fractions allowed). Returns microseconds since the epoch.
pub fn parse_query_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    if s.bytes()
        .all(|c| c.is_ascii_digit() || c == b'.' || c == b'-')
    {
        let secs: f64 = s.parse().ok()?;
        if !secs.is_finite() || secs.abs() > 1e11 {
            return None;
        }
        return Some((secs * 1e6).round() as i64);
    }
    s.parse::<Timestamp>().ok().map(|t| t.as_microsecond())
}

pub fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_in_utc() {
        let ms = parse_segment_name("2026-01-01_12-00-00.mp4").unwrap();
        assert_eq!(ms, 1_767_268_800_000);
        assert_eq!(segment_name(ms), "2026-01-01_12-00-00.mp4");
        assert_eq!(rfc3339_us(ms * 1000 + 40_000), "2026-01-01T12:00:00.04Z");
    }

    #[test]
    fn query_times() {
        assert_eq!(
            parse_query_time("2026-01-01T12:00:00Z"),
            Some(1_767_268_800_000_000)
        );
        assert_eq!(
            parse_query_time("2026-01-01T13:00:00.5+01:00"),
            Some(1_767_268_800_500_000)
        );
        assert_eq!(parse_query_time("1767268800"), Some(1_767_268_800_000_000));
        assert_eq!(
            parse_query_time("1767268800.25"),
            Some(1_767_268_800_250_000)
        );
        for bad in [
            "",
            "yesterday",
            "2026-01-01",
            "1e9",
            "NaN",
            "inf",
            "99999999999999999",
            "2026-13-01T00:00:00Z",
        ] {
            assert_eq!(parse_query_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_names_are_rejected() {
        for n in [
            "2026-01-01_12-00-00.mkv",
            "2026-13-01_12-00-00.mp4",
            "2026-02-30_12-00-00.mp4",
            "2026-01-01 12-00-00.mp4",
            "2026-01-01_12-00-0x.mp4",
            "+026-01-01_12-00-00.mp4",
            "x.mp4",
        ] {
            assert_eq!(parse_segment_name(n), None, "{n}");
        }
    }
}
