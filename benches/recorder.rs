//! Benchmark of issue 3: CPU and RSS of the daemon itself and of each ffmpeg while 4 streams
//! record from the test RTSP server. `BENCH_SECONDS` sets the length (default 300).
//!
//! Run with `cargo bench --bench recorder`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Daemon, RtspServer, Signal, TempDir, ffmpeg_children, wait_for, write_config};

/// (utime + stime in clock ticks, RSS in KiB) of a process.
fn sample(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(") ").unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the comm: state is [0], utime [11], stime [12].
    let ticks = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    let rss = common::proc_status_kib(pid, "VmRSS:");
    (ticks, rss)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let mounts = ["s1", "s2", "s3", "s4"];
    let server = RtspServer::start(&mounts);
    let dir = TempDir::new("benchrec");
    let streams: String = mounts
        .iter()
        .map(|m| {
            format!(
                "[[streams]]\nid = \"{m}\"\nurl = \"{}\"\nsegment_seconds = 60\n",
                server.url(m)
            )
        })
        .collect();
    let cfg = write_config(dir.path(), &streams);
    let mut d = Daemon::start(&cfg);
    assert!(d.wait_log("running:", Duration::from_secs(20)).is_some());
    assert!(wait_for(Duration::from_secs(20), || ffmpeg_children(
        d.pid()
    )
    .len()
        == 4));
    std::thread::sleep(Duration::from_secs(5));
    let mut pids = vec![d.pid()];
    pids.extend(ffmpeg_children(d.pid()));
    let before: Vec<_> = pids.iter().map(|p| sample(*p)).collect();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let wall = t0.elapsed().as_secs_f64();
    let after: Vec<_> = pids.iter().map(|p| sample(*p)).collect();
    let hz = 100.0; // USER_HZ on Linux
    println!("4 streams (320x240 H.264 15 fps + AAC) recorded for {wall:.0} s:");
    for (i, pid) in pids.iter().enumerate() {
        let cpu = (after[i].0 - before[i].0) as f64 / hz / wall * 100.0;
        let who = if i == 0 {
            "daemon".to_string()
        } else {
            format!("ffmpeg {i}")
        };
        println!(
            "  {who:10} pid {pid:6}: CPU {cpu:5.2}% of one core, RSS {} KiB",
            after[i].1
        );
    }
    d.signal(Signal::SIGTERM);
    assert!(d.wait(Duration::from_secs(30)).success());
}
