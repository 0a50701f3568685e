//! Benchmarks of issue 2, printed as plain numbers (not a timed test):
//! - the native probe of one 15-minute fragmented segment against `ffprobe format=duration`;
//! - the daemon's backfill of 20,000 segment files, from start to fully indexed, and its RSS.
//!
//! Run with `cargo bench --bench index`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    Daemon, Signal, TempDir, ffprobe_duration, record_segments, top_level_boxes, write_config,
};
use wallflower_nvr::media::probe_file;
use wallflower_nvr::time::{parse_segment_name, segment_name};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time_probe(path: &Path, n: usize) -> Duration {
    median(
        (0..n)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(probe_file(path).unwrap());
                t.elapsed()
            })
            .collect(),
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = TempDir::new("bench");
    // Kept between runs: making it takes most of a minute.
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("segment-900s");
    let seg = match std::fs::read_dir(&cache).ok().and_then(|mut d| d.next()) {
        Some(e) => e.unwrap().path(),
        None => {
            eprintln!("making a 15-minute segment (25 fps, 1 s GOP, AAC) with ffmpeg…");
            // One segment of 900 s: with a longer segment time the muxer writes one file.
            record_segments(&cache, 900.0, 3600, true, false).remove(0)
        }
    };
    let seg = &seg;
    let p = probe_file(seg).unwrap();
    let size = std::fs::metadata(seg).unwrap().len();
    let moofs = top_level_boxes(seg)
        .iter()
        .filter(|(_, k, _)| k == b"moof")
        .count();
    println!(
        "segment: {:.3} s, {} bytes, {moofs} fragments",
        p.duration_us as f64 / 1e6,
        size
    );

    let ours = time_probe(seg, 200);
    let ffprobe = median(
        (0..10)
            .map(|_| {
                let t = Instant::now();
                assert!(ffprobe_duration(seg).is_some());
                t.elapsed()
            })
            .collect(),
    );
    println!(
        "probe (finished file, mfra): {:.1} µs; ffprobe: {:.1} ms; ratio {:.0}x",
        ours.as_secs_f64() * 1e6,
        ffprobe.as_secs_f64() * 1e3,
        ffprobe.as_secs_f64() / ours.as_secs_f64()
    );
    // The same file without its mfra, as a segment still being written looks: every fragment.
    let mfra_at = top_level_boxes(seg)
        .iter()
        .find(|(_, k, _)| k == b"mfra")
        .unwrap()
        .0;
    let open = dir.path().join("open.mp4");
    std::fs::write(&open, &std::fs::read(seg).unwrap()[..mfra_at as usize]).unwrap();
    let walk = time_probe(&open, 50);
    println!(
        "probe (no mfra, walks {moofs} fragments): {:.1} µs; ratio to ffprobe {:.0}x",
        walk.as_secs_f64() * 1e6,
        ffprobe.as_secs_f64() / walk.as_secs_f64()
    );

    // 20,000 segment files: hard links to the 15-minute segment, in 4 stream folders.
    let root = dir.path().join("recordings");
    let t0 = parse_segment_name("2025-01-01_00-00-00.mp4").unwrap();
    for s in 0..4 {
        let d = root.join(format!("cam{s}"));
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..5000i64 {
            std::fs::hard_link(seg, d.join(segment_name(t0 + i * 900_000))).unwrap();
        }
    }
    let cfg = write_config(dir.path(), "");
    for run in ["empty index", "index already level"] {
        let t = Instant::now();
        let mut d = Daemon::start(&cfg);
        let line = d
            .wait_log("backfill:", Duration::from_secs(600))
            .expect("backfill ends");
        let elapsed = t.elapsed();
        let pid = d.child.id();
        println!(
            "backfill of 20,000 files ({run}): {:.0} ms from spawn to indexed; daemon RSS {} KiB (peak {} KiB)",
            elapsed.as_secs_f64() * 1e3,
            common::proc_status_kib(pid, "VmRSS:"),
            common::proc_status_kib(pid, "VmHWM:")
        );
        println!("  {}", line.split("] ").nth(1).unwrap_or(&line));
        d.signal(Signal::SIGTERM);
        d.wait(Duration::from_secs(30));
    }
}
