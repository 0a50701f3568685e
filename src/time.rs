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

/// UTC calendar fields of `t_us`, for years 0 to 9999: (y, m, d, hh, mm, ss, µs).
/// These two formatters run for every recording of every listing, so they do plain integer
/// arithmetic (Hinnant's days-to-civil) instead of a general strftime; the tests hold them equal
/// to jiff's.
fn civil(t_us: i64) -> Option<(i64, i64, i64, i64, i64, i64, i64)> {
    let secs = t_us.div_euclid(1_000_000);
    let us = t_us.rem_euclid(1_000_000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (0..=9999)
        .contains(&y)
        .then_some((y, m, d, sod / 3600, sod / 60 % 60, sod % 60, us))
}

/// Appends `v` as `width` decimal digits.
fn push_digits(s: &mut String, v: i64, width: u32) {
    for i in (0..width).rev() {
        s.push(char::from(b'0' + (v / 10i64.pow(i) % 10) as u8));
    }
}

/// `YYYY-mm-dd{sep}HH{tsep}MM{tsep}SS`.
fn push_datetime(s: &mut String, f: (i64, i64, i64, i64, i64, i64, i64), sep: char, tsep: char) {
    let (y, m, d, hh, mm, ss, _) = f;
    push_digits(s, y, 4);
    s.push('-');
    push_digits(s, m, 2);
    s.push('-');
    push_digits(s, d, 2);
    s.push(sep);
    push_digits(s, hh, 2);
    s.push(tsep);
    push_digits(s, mm, 2);
    s.push(tsep);
    push_digits(s, ss, 2);
}

/// The file name of a segment starting at `start_ms` (UTC, whole seconds).
pub fn segment_name(start_ms: i64) -> String {
    match civil(start_ms.saturating_mul(1000)) {
        Some(f) => {
            let mut s = String::with_capacity(23);
            push_datetime(&mut s, f, '_', '-');
            s.push_str(".mp4");
            s
        }
        None => format!("invalid-{start_ms}.mp4"),
    }
}

/// RFC 3339 UTC with as many fractional digits as needed (`2026-01-01T12:00:00.04Z`).
pub fn rfc3339_us(t_us: i64) -> String {
    let Some(f) = civil(t_us) else {
        return Timestamp::from_microsecond(t_us)
            .map_or_else(|_| "invalid".into(), |t| t.to_string());
    };
    let mut s = String::with_capacity(27);
    push_datetime(&mut s, f, 'T', ':');
    let mut us = f.6;
    if us != 0 {
        let mut width = 6;
        while us % 10 == 0 {
            us /= 10;
            width -= 1;
        }
        s.push('.');
        push_digits(&mut s, us, width);
    }
    s.push('Z');
    s
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
    fn fast_formatting_agrees_with_jiff() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Years 1900 to 2200, and some round values.
            let t_us = -2_208_988_800_000_000 + (x % 9_467_280_000_000_000) as i64;
            let t_us = if i % 3 == 0 {
                t_us / 1_000_000 * 1_000_000
            } else {
                t_us
            };
            let ts = Timestamp::from_microsecond(t_us).unwrap();
            assert_eq!(rfc3339_us(t_us), ts.to_string(), "{t_us}");
            let ms = t_us.div_euclid(1_000_000) * 1000;
            let want = format!(
                "{}.mp4",
                Timestamp::from_millisecond(ms)
                    .unwrap()
                    .strftime("%Y-%m-%d_%H-%M-%S")
            );
            assert_eq!(segment_name(ms), want);
            assert_eq!(parse_segment_name(&want), Some(ms));
        }
        assert_eq!(rfc3339_us(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_us(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(rfc3339_us(951_782_400_000_000), "2000-02-29T00:00:00Z");
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
