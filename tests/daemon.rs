//! The whole daemon binary: config errors before anything starts, and a kill -9 in the middle
//! of indexing that the next start recovers from.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use common::{Daemon, Signal, TempDir, corpus, write_config};
use wallflower_nvr::index::Store;
use wallflower_nvr::media::probe_file;
use wallflower_nvr::time::{parse_segment_name, segment_name};

#[test]
fn check_config_accepts_the_example_and_lists_every_error() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/wallflower-nvr.toml");
    let out = Command::new(common::bin())
        .args(["check-config", "-c", example])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains("0 stream(s), 0 enabled"), "{stdout}");

    let dir = TempDir::new("badcfg");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[recording]\nsegment_seconds = 0\naudio = \"loud\"\n[[streams]]\nid = \"x\"\nurl = \"http://cam/1\"\n").unwrap();
    // The path also comes from the environment when -c is not given.
    let out = Command::new(common::bin())
        .arg("check-config")
        .env("WALLFLOWER_NVR_CONFIG", &bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let p = bad.display();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!(
            "{p}:2:1: recording.segment_seconds: must be a whole number of seconds from 1 to 86400\n\
             {p}:3:1: recording.audio: \"loud\" is not one of \"auto\", \"copy\", \"off\"\n\
             {p}:6:1: streams[0].url: \"http://cam/1\" is not rtsp:// or rtsps://\n"
        )
    );
}

#[test]
fn a_bad_config_stops_the_daemon_before_anything_starts() {
    let dir = TempDir::new("badrun");
    let cfg = write_config(
        dir.path(),
        "[[streams]]\nid = \"a\"\n[[streams]]\nid = \"a\"\n",
    );
    let out = Command::new(common::bin())
        .args(["run", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("config.toml:12:1: streams[1].id: \"a\" is used by an earlier stream"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("index.redb").exists(),
        "nothing may start on a bad config"
    );
    assert!(!dir.path().join("recordings").exists());

    let out = Command::new(common::bin())
        .args(["run", "-c"])
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml:1:1: cannot read"));
}

#[test]
fn kill_9_while_indexing_then_restart_leaves_the_index_equal_to_the_disk() {
    let dir = TempDir::new("kill9");
    let root = dir.path().join("recordings");
    let srcs: Vec<_> = corpus()
        .iter()
        .filter(|f| f.file_name().unwrap().to_str().unwrap().starts_with("20"))
        .collect();
    let t0 = parse_segment_name("2026-03-01_00-00-00.mp4").unwrap();
    let mut want = BTreeSet::new();
    let mut add_files = |from: i64, n: i64| {
        for stream in ["front", "back"] {
            std::fs::create_dir_all(root.join(stream)).unwrap();
            for i in from..from + n {
                let start = t0 + i * 4_000;
                std::fs::hard_link(
                    srcs[i as usize % srcs.len()],
                    root.join(stream).join(segment_name(start)),
                )
                .unwrap();
                want.insert((stream.to_string(), start));
            }
        }
    };
    let cfg = write_config(dir.path(), "");

    // Each round brings new files and is killed at a different point of its backfill: while
    // probing, between index transactions, or after it.
    for (round, kill_after_ms) in [10u64, 500, 1500, 2500].into_iter().enumerate() {
        add_files(round as i64 * 750, 750);
        let mut d = Daemon::start(&cfg);
        assert!(
            d.wait_log("running:", Duration::from_secs(20)).is_some(),
            "round {round}: daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(kill_after_ms));
        d.signal(Signal::SIGKILL);
        d.wait(Duration::from_secs(10));
    }
    // Some files went away while the daemon was down.
    for i in 0..10i64 {
        let start = t0 + i * 4_000;
        std::fs::remove_file(root.join("front").join(segment_name(start))).unwrap();
        want.remove(&("front".to_string(), start));
    }

    let mut d = Daemon::start(&cfg);
    let line = d
        .wait_log("backfill:", Duration::from_secs(60))
        .expect("backfill finishes");
    assert!(line.contains(&format!("{} files", want.len())), "{line}");
    d.signal(Signal::SIGTERM);
    assert!(d.wait(Duration::from_secs(20)).success());

    let store = Store::open(&dir.path().join("index.redb")).unwrap();
    let recs = store.all().unwrap();
    let got: BTreeSet<(String, i64)> = recs
        .iter()
        .map(|r| (r.stream_id.clone(), r.start_ms))
        .collect();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "index and disk differ");
    for r in &recs {
        assert_eq!(
            r.duration_us,
            probe_file(&root.join(r.file_path())).unwrap().duration_us,
            "{r:?}"
        );
        assert_eq!(
            r.file_size_bytes,
            std::fs::metadata(root.join(r.file_path())).unwrap().len()
        );
    }
    let ids: BTreeSet<u64> = recs.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), recs.len(), "ids are unique");
    assert_eq!(store.unindexable_count().unwrap(), 0);
    let derived = derived_matches_a_scan(&store);

    // A rebuild from the files alone derives the same.
    let path = store.path().to_owned();
    drop(store);
    std::fs::remove_file(&path).unwrap();
    let store = Store::open(&path).unwrap();
    wallflower_nvr::index::indexer::backfill(&store, &root).unwrap();
    assert_eq!(derived_matches_a_scan(&store), derived);
}

type Totals = BTreeMap<String, (u64, u64)>;

/// Checks the per-stream totals and the days with footage that the index keeps against a full
/// scan of its recordings; returns them.
fn derived_matches_a_scan(store: &Store) -> (Totals, BTreeMap<String, Vec<String>>) {
    let mut totals: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut days: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in store.all().unwrap() {
        let t = totals.entry(r.stream_id.clone()).or_default();
        t.0 += 1;
        t.1 += r.file_size_bytes;
        let ms = [
            r.start_ms,
            (r.end_us() - 1).div_euclid(1000).max(r.start_ms),
        ];
        for ms in ms {
            days.entry(r.stream_id.clone()).or_default().insert(
                jiff::Timestamp::from_millisecond(ms)
                    .unwrap()
                    .strftime("%F")
                    .to_string(),
            );
        }
    }
    assert_eq!(store.stream_totals().unwrap(), totals);
    let days: BTreeMap<String, Vec<String>> = days
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect();
    for (stream, want) in &days {
        let got: Vec<String> = store
            .dates(stream, &jiff::tz::TimeZone::UTC)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(&got, want, "{stream}");
    }
    assert!(!totals.is_empty());
    (totals, days)
}

/// A stop that comes while the HTTP workers are still starting once left ntex's server future
/// unresolved and the daemon hung (about one start in fifteen). Each of these starts is
/// stopped at once and must exit within seconds.
#[test]
fn a_stop_right_after_start_always_exits() {
    let dir = TempDir::new("quickstop");
    let cfg = write_config(dir.path(), "");
    for i in 0..20 {
        let mut d = Daemon::start(&cfg);
        assert!(
            d.wait_log("http: listening on", Duration::from_secs(20))
                .is_some()
        );
        d.signal(common::Signal::SIGTERM);
        let t0 = std::time::Instant::now();
        let status = d.wait(Duration::from_secs(15));
        assert!(status.success(), "start {i}: {status}");
        assert!(
            t0.elapsed() < Duration::from_secs(12),
            "start {i} took {:?}",
            t0.elapsed()
        );
    }
}
