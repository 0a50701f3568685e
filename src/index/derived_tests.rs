//! The derived tables against a full scan, after random changes, a migration and a rebuild.

use std::collections::BTreeMap;
use std::path::PathBuf;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use redb::{ReadableDatabase, ReadableTable};

use super::super::schema::*;
use super::super::store::Store;
use super::decode_counts;
use crate::time;

fn rec(stream: &str, start_ms: i64, duration_us: u64, size: u64) -> Recording {
    Recording {
        id: 0,
        stream_id: stream.into(),
        start_ms,
        duration_us,
        file_size_bytes: size,
        mtime_ms: 0,
        retention_locked: false,
        truncated: false,
        video_codec: Some("h264".into()),
        width: 640,
        height: 360,
        audio_codec: None,
    }
}

fn tmp(name: &str) -> (PathBuf, Store) {
    let dir = std::env::temp_dir().join(format!("wf-derived-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let s = Store::open(&dir.join("index.redb")).unwrap();
    (dir, s)
}

type Hours = BTreeMap<(String, i64), u32>;

/// What a full scan of the recordings says.
fn scanned(s: &Store) -> (BTreeMap<String, (u64, u64)>, Hours) {
    let mut totals: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut hours = Hours::new();
    for r in s.all().unwrap() {
        let t = totals.entry(r.stream_id.clone()).or_default();
        t.0 += 1;
        t.1 += r.file_size_bytes;
        for h in r.hours() {
            *hours.entry((r.stream_id.clone(), h)).or_default() += 1;
        }
    }
    (totals, hours)
}

/// What the derived tables hold.
fn kept(s: &Store) -> (BTreeMap<String, (u64, u64)>, Hours) {
    let tx = s.db.begin_read().unwrap();
    let mut hours = Hours::new();
    for row in tx.open_table(HOURS).unwrap().iter().unwrap() {
        let (k, v) = row.unwrap();
        let (stream, day) = k.value();
        let c = decode_counts(v.value());
        assert!(c.iter().any(|n| *n > 0), "no empty rows are kept");
        for (h, n) in c.iter().enumerate().filter(|(_, n)| **n > 0) {
            hours.insert((stream.to_owned(), day * 24 + h as i64), *n);
        }
    }
    (s.stream_totals().unwrap(), hours)
}

/// A small xorshift, so a failure can be replayed from its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn totals_and_hours_equal_a_full_scan_after_random_changes() {
    let (dir, s) = tmp("random");
    for seed in [1u64, 7, 0x9e37_79b9] {
        let mut rng = Rng(seed);
        for _ in 0..60 {
            let mut changes = Vec::new();
            for _ in 0..rng.below(20) + 1 {
                let stream = ["a", "b", "c"][rng.below(3) as usize];
                // Starts on a grid, so the same key comes back as an update or a removal.
                let start_ms = rng.below(400) as i64 * 600_000 - 20 * HOUR_MS;
                match rng.below(4) {
                    0 => changes.push(Change::Remove {
                        stream_id: stream.into(),
                        start_ms,
                    }),
                    _ => {
                        // Up to 3 hours: segments that cross hours and days, and ones of 0 s.
                        let dur = rng.below(4) * rng.below(3_600_000_000);
                        changes.push(Change::Upsert(rec(
                            stream,
                            start_ms,
                            dur,
                            rng.below(1 << 30),
                        )))
                    }
                }
            }
            s.apply(&changes).unwrap();
            if rng.below(5) == 0 {
                let n = s.count().unwrap();
                if n > 0 {
                    let all = s.all().unwrap();
                    let r = &all[rng.below(n) as usize];
                    s.set_locked(r.id, !r.retention_locked).unwrap();
                }
            }
            assert_eq!(kept(&s), scanned(&s), "seed {seed}");
        }
    }
    // A crafted file's endless duration marks at most MAX_HOURS hours, and goes away whole.
    s.apply(&[Change::Upsert(rec("x", 0, u64::MAX, 1))])
        .unwrap();
    assert_eq!(
        kept(&s).1.keys().filter(|k| k.0 == "x").count() as i64,
        MAX_HOURS
    );
    s.apply(&[Change::Remove {
        stream_id: "x".into(),
        start_ms: 0,
    }])
    .unwrap();
    assert_eq!(kept(&s), scanned(&s));
    assert!(!s.stream_totals().unwrap().contains_key("x"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_index_of_version_1_is_migrated_in_place() {
    let (dir, s) = tmp("migrate");
    let changes: Vec<Change> = (0..500)
        .map(|i| {
            Change::Upsert(rec(
                ["a", "b"][i % 2],
                i as i64 * 900_000,
                900_000_000,
                1000,
            ))
        })
        .collect();
    let stored = s.apply(&changes).unwrap();
    let before = scanned(&s);
    // Make it what version 1 wrote: no derived tables, version 1.
    let tx = s.db.begin_write().unwrap();
    assert!(tx.delete_table(TOTALS).unwrap());
    assert!(tx.delete_table(HOURS).unwrap());
    tx.open_table(META).unwrap().insert(KEY_SCHEMA, 1).unwrap();
    tx.commit().unwrap();
    let path = s.path().to_owned();
    drop(s);
    let s = Store::open(&path).unwrap();
    assert_eq!(kept(&s), before, "derived from the records already held");
    assert_eq!(s.count().unwrap(), 500, "nothing was rebuilt");
    assert_eq!(s.get(stored[7].id).unwrap(), stored[7], "ids kept");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(files.len(), 1, "nothing moved aside");
    let tx = s.db.begin_read().unwrap();
    let v = tx
        .open_table(META)
        .unwrap()
        .get(KEY_SCHEMA)
        .unwrap()
        .unwrap()
        .value();
    assert_eq!(v, SCHEMA_VERSION);
    drop(tx);
    std::fs::remove_dir_all(dir).unwrap();
}

fn dates(s: &Store, stream: &str, tz: &str) -> Vec<String> {
    let tz = TimeZone::get(tz).unwrap();
    s.dates(stream, &tz)
        .unwrap()
        .iter()
        .map(Date::to_string)
        .collect()
}

#[test]
fn dates_are_exact_where_an_hour_crosses_local_midnight() {
    let (dir, s) = tmp("dates");
    // India is UTC+5:30: 18:00-19:00 UTC is 23:30-00:30 local.
    let t = |name: &str| time::parse_segment_name(name).unwrap();
    s.apply(&[
        // 18:00-18:10 UTC on the 1st: 23:30-23:40 on the 1st in Kolkata only.
        Change::Upsert(rec("before", t("2026-05-01_18-00-00.mp4"), 600_000_000, 1)),
        // 18:40-18:45 UTC: 00:10-00:15 on the 2nd only.
        Change::Upsert(rec("after", t("2026-05-01_18-40-00.mp4"), 300_000_000, 1)),
        // 18:20-18:40 UTC: both.
        Change::Upsert(rec("both", t("2026-05-01_18-20-00.mp4"), 1_200_000_000, 1)),
        // Nepal is UTC+5:45. 18:10-18:14:59 UTC is 23:55-23:59:59: the end is exclusive.
        Change::Upsert(rec("nepal", t("2026-05-01_18-10-00.mp4"), 300_000_000, 1)),
    ])
    .unwrap();
    assert_eq!(dates(&s, "before", "Asia/Kolkata"), ["2026-05-01"]);
    assert_eq!(dates(&s, "after", "Asia/Kolkata"), ["2026-05-02"]);
    assert_eq!(
        dates(&s, "both", "Asia/Kolkata"),
        ["2026-05-01", "2026-05-02"]
    );
    assert_eq!(dates(&s, "nepal", "Asia/Kathmandu"), ["2026-05-01"]);
    assert_eq!(dates(&s, "after", "UTC"), ["2026-05-01"]);
    assert_eq!(dates(&s, "nope", "UTC"), Vec::<String>::new());
    // A New York autumn night: 04:00-07:00 UTC on 2026-11-01 is 00:00-01:00 EDT, then 01:00-02:00
    // EST twice; all of it is the 1st. 03:30 UTC is 23:30 on the 31st.
    s.apply(&[Change::Upsert(rec(
        "ny",
        t("2026-11-01_03-30-00.mp4"),
        3 * 3_600_000_000,
        1,
    ))])
    .unwrap();
    assert_eq!(
        dates(&s, "ny", "America/New_York"),
        ["2026-10-31", "2026-11-01"]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn dates_follow_the_zone_and_dst() {
    let (dir, s) = tmp("dst");
    // 2026-03-29 00:30 UTC is 01:30 CET; Europe/Berlin springs forward at 01:00 UTC that day.
    let t0 = time::parse_segment_name("2026-03-28_22-30-00.mp4").unwrap();
    // 23:30 UTC on the 28th is 00:30 on the 29th in Berlin: 90 minutes cross local midnight.
    s.apply(&[Change::Upsert(rec("cam", t0, 90 * 60 * 1_000_000, 1))])
        .unwrap();
    let tz = TimeZone::get("Europe/Berlin").unwrap();
    let fmt = |v: Vec<Date>| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(
        fmt(s.dates("cam", &tz).unwrap()),
        ["2026-03-28", "2026-03-29"]
    );
    assert_eq!(fmt(s.dates("cam", &TimeZone::UTC).unwrap()), ["2026-03-28"]);
    let ny = TimeZone::get("America/New_York").unwrap();
    assert_eq!(fmt(s.dates("cam", &ny).unwrap()), ["2026-03-28"]);
    std::fs::remove_dir_all(dir).unwrap();
}
