//! HTTP byte ranges (RFC 9110 §14): parsing one `Range` header against a known length.
//!
//! Invariants: a range that is returned always lies inside `[0, len)`; anything this module
//! cannot serve safely (several ranges, a malformed header) is answered with the whole
//! resource, which RFC 9110 allows a server to do.

/// What a `Range` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranged {
    /// No usable range: send everything with 200.
    Full,
    /// One satisfiable range, `start..=end`: send it with 206.
    Part { start: u64, end: u64 },
    /// Syntactically fine but outside the resource: 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Interprets `header` (the value of `Range`) for a resource of `len` bytes.
pub fn parse(header: Option<&str>, len: u64) -> Ranged {
    let Some(h) = header else { return Ranged::Full };
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return Ranged::Full;
    };
    if spec.contains(',') {
        // Several ranges: served whole rather than as multipart/byteranges.
        return Ranged::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ranged::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || s.len() > 19 || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (a.is_empty(), b.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match num(b) {
            Some(0) => Ranged::Unsatisfiable,
            Some(_) if len == 0 => Ranged::Unsatisfiable,
            Some(n) => Ranged::Part {
                start: len.saturating_sub(n),
                end: len - 1,
            },
            None => Ranged::Full,
        },
        // bytes=A-: from A to the end.
        (false, true) => match num(a) {
            Some(s) if s < len => Ranged::Part {
                start: s,
                end: len - 1,
            },
            Some(_) => Ranged::Unsatisfiable,
            None => Ranged::Full,
        },
        // bytes=A-B
        (false, false) => match (num(a), num(b)) {
            (Some(s), Some(e)) if s > e => Ranged::Full,
            (Some(s), Some(_)) if s >= len => Ranged::Unsatisfiable,
            (Some(s), Some(e)) => Ranged::Part {
                start: s,
                end: e.min(len - 1),
            },
            _ => Ranged::Full,
        },
        (true, true) => Ranged::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges() {
        let p = |h: &str| parse(Some(h), 1000);
        assert_eq!(p("bytes=0-499"), Ranged::Part { start: 0, end: 499 });
        assert_eq!(
            p("bytes=500-"),
            Ranged::Part {
                start: 500,
                end: 999
            }
        );
        assert_eq!(
            p("bytes=-200"),
            Ranged::Part {
                start: 800,
                end: 999
            }
        );
        assert_eq!(p("bytes=-5000"), Ranged::Part { start: 0, end: 999 });
        assert_eq!(
            p("bytes=900-5000"),
            Ranged::Part {
                start: 900,
                end: 999
            }
        );
        assert_eq!(
            p("bytes=999-999"),
            Ranged::Part {
                start: 999,
                end: 999
            }
        );
        assert_eq!(p(" bytes= 10 - 20 "), Ranged::Part { start: 10, end: 20 });
    }

    #[test]
    fn unsatisfiable_ranges() {
        let p = |h: &str| parse(Some(h), 1000);
        assert_eq!(p("bytes=1000-"), Ranged::Unsatisfiable);
        assert_eq!(p("bytes=1000-2000"), Ranged::Unsatisfiable);
        assert_eq!(p("bytes=-0"), Ranged::Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-"), 0), Ranged::Unsatisfiable);
        assert_eq!(parse(Some("bytes=-1"), 0), Ranged::Unsatisfiable);
    }

    #[test]
    fn what_is_served_whole() {
        let p = |h: &str| parse(Some(h), 1000);
        assert_eq!(parse(None, 1000), Ranged::Full);
        for h in [
            "bytes=0-1,5-9",
            "items=0-1",
            "bytes=",
            "bytes=-",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=99999999999999999999999-",
            "bytes=0x10-",
            "bytes=--1",
        ] {
            assert_eq!(p(h), Ranged::Full, "{h}");
        }
    }
}
