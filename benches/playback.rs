//! Benchmarks of issue 7, printed as plain numbers:
//! - time to first byte and throughput of a 1-hour `playback.mp4` (four 15-minute segments with
//!   a 1 s GOP), against serving one of those segments through `/api/recordings/{id}/stream`;
//! - the daemon's CPU per live viewer: recording the RTSP test camera with 0 and then 10
//!   viewers of `live.mp4`.
//!
//! Run with `cargo bench --bench playback`; needs `wrk` and `curl` (`apt-get install`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, RtspServer, TempDir, record_segments, wait_for, write_config};
use wallflower_nvr::time::{parse_segment_name, segment_name};

/// The `Cookie` header of the helper's admin session with the daemon of `url`.
fn cookie(url: &str) -> String {
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("");
    format!("Cookie: {}", common::session_for(addr).expect("logged in"))
}

/// curl's time to first byte (ms) and download speed (MB/s) for `url`.
fn curl(url: &str) -> (f64, f64) {
    let out = Command::new("curl")
        .args(["-H", &cookie(url)])
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{time_starttransfer} %{speed_download}",
            url,
        ])
        .output()
        .expect("curl runs");
    let s = String::from_utf8_lossy(&out.stdout);
    let mut it = s
        .split_whitespace()
        .map(|x| x.parse::<f64>().unwrap_or(0.0));
    let ttfb = it.next().unwrap_or(0.0) * 1000.0;
    let speed = it.next().unwrap_or(0.0) / 1e6;
    (ttfb, speed)
}

fn wrk_mb_s(url: &str) -> f64 {
    let out = Command::new("wrk")
        .args(["-H", &cookie(url), "-t2", "-c16", "-d10s", url])
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = out
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("Transfer/sec:"))
        .map(|r| r.trim().to_owned())
        .unwrap_or_default();
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    num.parse::<f64>().unwrap_or(0.0)
        * match unit {
            "GB" => 1024.0,
            "KB" => 1.0 / 1024.0,
            _ => 1.0,
        }
}

/// CPU time (user + system) of `pid` so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0)
}

/// The daemon's share of one core over `secs` seconds, in percent.
fn cpu_percent(pid: u32, secs: u64) -> f64 {
    let tick = 100.0; // USER_HZ
    let (c0, t0) = (cpu_ticks(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(secs));
    let used = (cpu_ticks(pid) - c0) as f64 / tick;
    used / t0.elapsed().as_secs_f64() * 100.0
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = TempDir::new("benchplayback");
    let root = dir.path().join("recordings");

    // One hour: four 15-minute segments (hard links to one real one), 1 s GOP.
    let seg = record_segments(&dir.path().join("src"), 900.0, 900, true, false).remove(0);
    let seg_len = std::fs::metadata(&seg).unwrap().len();
    let t0 = parse_segment_name("2026-01-01_00-00-00.mp4").unwrap();
    std::fs::create_dir_all(root.join("cam")).unwrap();
    for i in 0..4 {
        std::fs::hard_link(&seg, root.join("cam").join(segment_name(t0 + i * 900_000))).unwrap();
    }
    let cfg = write_config(dir.path(), "");
    let mut daemon = Daemon::start(&cfg);
    let addr = daemon.http_addr();
    assert!(
        daemon
            .wait_log("backfill:", Duration::from_secs(60))
            .is_some()
    );

    let hour = format!(
        "http://{addr}/api/streams/cam/playback.mp4?start={}&end={}",
        t0 / 1000,
        t0 / 1000 + 3600
    );
    let one = format!("http://{addr}/api/recordings/1/stream");
    let (cold_ttfb, _) = curl(&hour);
    let (warm_ttfb, one_pass) = curl(&hour);
    let (seg_cold_ttfb, _) = curl(&one);
    let (seg_warm_ttfb, seg_pass) = curl(&one);
    println!(
        "segment file: {:.1} MB, 1 hour = 4 of them",
        seg_len as f64 / 1e6
    );
    println!(
        "time to first byte: playback.mp4 (1 h) {cold_ttfb:.1} ms cold, {warm_ttfb:.1} ms warm; \
         one segment {seg_cold_ttfb:.1} ms cold, {seg_warm_ttfb:.1} ms warm"
    );
    println!("single download: playback.mp4 {one_pass:.0} MB/s, one segment {seg_pass:.0} MB/s");
    let hour_mb = wrk_mb_s(&hour);
    let seg_mb = wrk_mb_s(&one);
    println!(
        "wrk -c16: playback.mp4 {hour_mb:.0} MB/s, one segment {seg_mb:.0} MB/s ({:.2}x)",
        hour_mb / seg_mb
    );
    drop(daemon);

    // Live viewers: the daemon recording the RTSP test camera, 0 then 10 viewers.
    let server = RtspServer::start(&["cam"]);
    let ldir = TempDir::new("benchlive");
    let cfg = write_config(
        ldir.path(),
        &format!(
            "[[streams]]\nid = \"cam\"\nurl = \"{}\"\nsegment_seconds = 60\n",
            server.url("cam")
        ),
    );
    let mut daemon = Daemon::start(&cfg);
    let addr = daemon.http_addr();
    let cam = ldir.path().join("recordings/cam");
    assert!(wait_for(Duration::from_secs(30), || std::fs::read_dir(
        &cam
    )
    .is_ok_and(|mut d| d.next().is_some())));
    std::thread::sleep(Duration::from_secs(3));
    let secs = 30;
    let idle = cpu_percent(daemon.pid(), secs);
    let viewers: Vec<std::process::Child> = (0..10)
        .map(|_| {
            Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    &format!("http://{addr}/api/streams/cam/live.mp4"),
                ])
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let busy = cpu_percent(daemon.pid(), secs);
    for mut v in viewers {
        let _ = v.kill();
        let _ = v.wait();
    }
    println!(
        "daemon CPU over {secs} s: {idle:.2}% of a core with no viewer, {busy:.2}% with 10 \
         live viewers: {:.3}% per viewer",
        (busy - idle) / 10.0
    );
}
