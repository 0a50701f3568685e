//! Benchmark of issue 17: what the daemon costs as its footage grows, printed as plain numbers.
//!
//! For each size (`BENCH_SIZES`, default `10000,300000`) recordings over 8 streams, made of hard
//! links to 8 copies of one real 15-minute segment (a file may have at most 65,000 links), one
//! every 15 minutes per stream:
//! - the cold backfill (spawn to indexed, into an empty index) and the daemon's RSS after it;
//! - idle CPU over 20 s with `check_interval_seconds = 5` (the streams are disabled);
//! - the median latency of `/metrics`, of `recordings/dates` and of a one-day listing, a different day each
//!   time so that no cached answer is reused.
//!
//! Then, on the largest box, 8 streams record from the test RTSP server (10-second segments,
//! `BENCH_SECONDS`, default 120): the daemon's CPU and RSS, and the time from a segment's close
//! (inotify, seen here) until the API lists it, p50 and p99. `BENCH_LOAD=N` keeps N threads
//! spinning meanwhile, to see that latency on a busy machine.
//!
//! Run with `cargo bench --bench scale`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Daemon, RtspServer, Signal, TempDir, http, record_segments, write_config_with};
use wallflower_nvr::time::{parse_segment_name, segment_name};

const STREAMS: usize = 8;
const SEGMENT_MS: i64 = 900_000;

/// CPU time of every thread of `pid`, from the scheduler's nanosecond counters.
fn cpu_ns(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn median_ms(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn percentile_ms(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort();
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i].as_secs_f64() * 1e3
}

/// The 15-minute segment of `benches/index.rs`, made once and kept between runs.
fn segment() -> PathBuf {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("segment-900s");
    match std::fs::read_dir(&cache).ok().and_then(|mut d| d.next()) {
        Some(e) => e.unwrap().path(),
        None => {
            eprintln!("making a 15-minute segment (25 fps, 1 s GOP, AAC) with ffmpeg…");
            record_segments(&cache, 900.0, 3600, true, false).remove(0)
        }
    }
}

fn streams_config(url: impl Fn(usize) -> Option<String>) -> String {
    (0..STREAMS)
        .map(|s| match url(s) {
            Some(u) => format!(
                "[[streams]]\nid = \"cam{s}\"\nurl = \"{u}\"\nsegment_seconds = 10\n\
                 retention_days = 3650\n"
            ),
            None => format!(
                "[[streams]]\nid = \"cam{s}\"\nurl = \"rtsp://127.0.0.1:9/none\"\n\
                 enabled = false\nretention_days = 3650\n"
            ),
        })
        .collect()
}

const RETENTION: &str = "default_days = 3650\ncheck_interval_seconds = 5\n";

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "10000,300000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("BENCH_SIZES: numbers"))
        .collect();
    let secs: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let seg = segment();
    let srcs_dir = TempDir::new("scale-src");
    let srcs: Vec<PathBuf> = (0..STREAMS)
        .map(|s| {
            let p = srcs_dir.path().join(format!("seg{s}.mp4"));
            std::fs::copy(&seg, &p).unwrap();
            p
        })
        .collect();
    // Footage up to about now, so that days and retention look like a real box's.
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let mut last = None;
    for &n in &sizes {
        let dir = TempDir::new("scale");
        let root = dir.path().join("recordings");
        let per_stream = (n / STREAMS) as i64;
        let t0 = (now_ms - per_stream * SEGMENT_MS).div_euclid(SEGMENT_MS) * SEGMENT_MS;
        for (s, src) in srcs.iter().enumerate() {
            let d = root.join(format!("cam{s}"));
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..per_stream {
                std::fs::hard_link(src, d.join(segment_name(t0 + i * SEGMENT_MS))).unwrap();
            }
        }
        let cfg = write_config_with(dir.path(), RETENTION, &streams_config(|_| None));
        let t = Instant::now();
        let mut d = Daemon::start(&cfg);
        d.wait_log("backfill:", Duration::from_secs(1800))
            .expect("the backfill ends");
        let backfill = t.elapsed();
        let addr = d.http_addr();
        std::thread::sleep(Duration::from_secs(5));
        let pid = d.pid();
        let rss = common::proc_status_kib(pid, "VmRSS:");
        let c0 = cpu_ns(pid);
        let t = Instant::now();
        std::thread::sleep(Duration::from_secs(20));
        let idle = (cpu_ns(pid) - c0) as f64 / t.elapsed().as_nanos() as f64 * 100.0;

        let reps = 21;
        let time = |path: &str| {
            let t = Instant::now();
            let r = http(&addr, "GET", path, &[], b"");
            assert_eq!(r.status, 200, "{path}");
            t.elapsed()
        };
        let metrics = median_ms((0..reps).map(|_| time("/metrics")).collect());
        let dates = median_ms(
            (0..reps)
                .map(|i| time(&format!("/api/streams/cam{}/recordings/dates", i % STREAMS)))
                .collect(),
        );
        let days = per_stream * SEGMENT_MS / 86_400_000;
        let listing = median_ms(
            (0..reps as i64)
                .map(|i| {
                    let from = (t0 + (i * 7 % days.max(1)) * 86_400_000) / 1000;
                    time(&format!(
                        "/api/streams/cam{}/recordings?start={from}&end={}",
                        i as usize % STREAMS,
                        from + 86_400
                    ))
                })
                .collect(),
        );
        println!(
            "{n} recordings over {STREAMS} streams ({days} days each): cold backfill {:.2} s; \
             RSS {rss} KiB (peak {} KiB); idle CPU {idle:.3}% of a core; median /metrics \
             {metrics:.2} ms, /dates {dates:.2} ms, a day's listing {listing:.2} ms",
            backfill.as_secs_f64(),
            common::proc_status_kib(pid, "VmHWM:"),
        );
        d.signal(Signal::SIGTERM);
        assert!(d.wait(Duration::from_secs(30)).success());
        last = Some((dir, n));
    }

    let Some((dir, n)) = last else { return };
    migrate(&dir, n);
    record(&dir, n, secs);
}

/// Turns the box's index back into what version 1 wrote (no derived tables) and times the
/// upgrade at the next start.
fn migrate(dir: &TempDir, n: usize) {
    let path = dir.path().join("index.redb");
    let db = redb::Database::open(&path).unwrap();
    let tx = db.begin_write().unwrap();
    for t in ["totals", "hours"] {
        let def: redb::TableDefinition<&str, u64> = redb::TableDefinition::new(t);
        tx.delete_table(def).unwrap();
    }
    let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
    tx.open_table(meta)
        .unwrap()
        .insert("schema_version", 1)
        .unwrap();
    tx.commit().unwrap();
    drop(db);
    let cfg = dir.path().join("config.toml");
    let mut d = Daemon::start(&cfg);
    let line = d
        .wait_log("migrated", Duration::from_secs(600))
        .expect("the index is migrated");
    d.wait_log("backfill:", Duration::from_secs(600))
        .expect("the backfill ends");
    println!(
        "an index of version 1 with {n} recordings: {}",
        line.split("] ").nth(1).unwrap_or(&line)
    );
    d.signal(Signal::SIGTERM);
    assert!(d.wait(Duration::from_secs(30)).success());
}

/// 8 streams record on the box of `n` recordings for `secs` seconds.
fn record(dir: &TempDir, n: usize, secs: u64) {
    let mounts: Vec<String> = (0..STREAMS).map(|s| format!("m{s}")).collect();
    let mount_refs: Vec<&str> = mounts.iter().map(String::as_str).collect();
    let server = RtspServer::start(&mount_refs);
    let cfg = write_config_with(
        dir.path(),
        RETENTION,
        &streams_config(|s| Some(server.url(&mounts[s]))),
    );
    let root = dir.path().join("recordings");
    // Segment closes, as inotify reports them to this process.
    let (tx, rx) = mpsc::channel::<(usize, i64, Instant)>();
    let mut ino = inotify::Inotify::init().unwrap();
    let mut streams_by_wd = Vec::new();
    for s in 0..STREAMS {
        let wd = ino
            .watches()
            .add(
                root.join(format!("cam{s}")),
                inotify::WatchMask::CLOSE_WRITE | inotify::WatchMask::MOVED_TO,
            )
            .unwrap();
        streams_by_wd.push((wd, s));
    }
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let Ok(events) = ino.read_events_blocking(&mut buf) else {
                return;
            };
            let at = Instant::now();
            for e in events {
                let Some(s) = streams_by_wd.iter().find(|(w, _)| *w == e.wd).map(|x| x.1) else {
                    continue;
                };
                let Some(ms) = e.name.and_then(|n| parse_segment_name(n.to_str()?)) else {
                    continue;
                };
                if tx.send((s, ms, at)).is_err() {
                    return;
                }
            }
        }
    });

    let mut d = Daemon::start(&cfg);
    d.wait_log("backfill:", Duration::from_secs(1800))
        .expect("the backfill ends");
    let addr = d.http_addr();
    let pid = d.pid();
    let load: usize = std::env::var("BENCH_LOAD")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let spinning = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    for _ in 0..load {
        let on = spinning.clone();
        std::thread::spawn(move || {
            let mut x = 0u64;
            while on.load(std::sync::atomic::Ordering::Relaxed) {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        });
    }
    // The first segments of a start are cut short; let the streams settle.
    std::thread::sleep(Duration::from_secs(15));
    while rx.try_recv().is_ok() {}
    let c0 = cpu_ns(pid);
    let t = Instant::now();
    let mut visible = Vec::new();
    while t.elapsed() < Duration::from_secs(secs) {
        let Ok((s, ms, closed)) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        let path = format!(
            "/api/streams/cam{s}/recordings?start={}&end={}",
            ms / 1000,
            ms / 1000 + 1
        );
        let want = format!(
            "\"start_time\":\"{}",
            wallflower_nvr::time::rfc3339_us(ms * 1000)
        );
        let deadline = closed + Duration::from_secs(10);
        loop {
            let r = http(&addr, "GET", &path, &[], b"");
            if String::from_utf8_lossy(&r.body).contains(&want) {
                visible.push(closed.elapsed());
                break;
            }
            if Instant::now() > deadline {
                println!("  cam{s} {ms}: not listed 10 s after it closed");
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let cpu = (cpu_ns(pid) - c0) as f64 / t.elapsed().as_nanos() as f64 * 100.0;
    spinning.store(false, std::sync::atomic::Ordering::Relaxed);
    let rss = common::proc_status_kib(pid, "VmRSS:");
    println!(
        "{STREAMS} streams recording on the box of {n} recordings for {:.0} s, {load} busy \
         threads beside: daemon CPU \
         {cpu:.2}% of a core, RSS {rss} KiB; segment close to listed in the API ({} segments): \
         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        t.elapsed().as_secs_f64(),
        visible.len(),
        percentile_ms(&mut visible, 0.5),
        percentile_ms(&mut visible, 0.99),
        percentile_ms(&mut visible, 1.0),
    );
    d.signal(Signal::SIGTERM);
    assert!(d.wait(Duration::from_secs(30)).success());
}
