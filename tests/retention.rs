//! Retention on a real small filesystem (a size-limited tmpfs the test mounts; CI runs as
//! root), filled by real recording from the test RTSP server.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    Daemon, RtspServer, Signal, TempDir, ffmpeg_children, http, noise_segment, pid_alive, wait_for,
};
use wallflower_nvr::retention::disk;
use wallflower_nvr::time::{Clock, SystemClock, segment_name};

/// A tmpfs of `size` mounted at `dir`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        common::run(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(dir),
        );
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn free_percent(dir: &Path) -> f64 {
    disk::usage(dir).unwrap().free_percent()
}

/// Grows (or shrinks) a ballast file so that `dir` has `percent` free.
fn set_free(dir: &Path, ballast: &Path, percent: f64) {
    let u = disk::usage(dir).unwrap();
    let have = std::fs::metadata(ballast).map_or(0, |m| m.len());
    let want_free = (u.total_bytes as f64 * percent / 100.0) as u64;
    let new_len = (have + u.free_bytes).saturating_sub(want_free);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(ballast)
        .unwrap();
    f.set_len(new_len).unwrap();
    // tmpfs allocates on write, not on set_len: write it for real.
    let mut f = f;
    use std::io::{Seek, Write};
    f.seek(std::io::SeekFrom::Start(0)).unwrap();
    let chunk = vec![0x5au8; 1 << 20];
    let mut left = new_len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    f.sync_all().unwrap();
}

#[test]
fn disk_pressure_deletes_the_oldest_unlocked_recordings_while_recording_goes_on() {
    let server = RtspServer::start(&["live"]);
    let dir = TempDir::new("pressure");
    let rec_dir = dir.path().join("recordings");
    let _fs = Tmpfs::mount(&rec_dir, "64m");

    // Old footage of another camera: 8 segments of about 4 MB, the two oldest locked.
    let seg = dir.path().join("noise.mp4");
    noise_segment(&seg, "320x240", 1.0);
    let old_dir = rec_dir.join("old");
    std::fs::create_dir_all(&old_dir).unwrap();
    let t0 = SystemClock.now_ms() / 1000 * 1000 - 86_400_000;
    let old: Vec<PathBuf> = (0..8)
        .map(|i| {
            let p = old_dir.join(segment_name(t0 + i * 60_000));
            std::fs::copy(&seg, &p).unwrap();
            p
        })
        .collect();
    for p in &old[..2] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    let ballast = rec_dir.join("ballast");
    // Just above the 20% minimum: the live recording soon crosses it.
    set_free(&rec_dir, &ballast, 21.0);
    assert!(
        (free_percent(&rec_dir) - 21.0).abs() < 1.0,
        "{}",
        free_percent(&rec_dir)
    );

    let cfg = common::write_config_with(
        dir.path(),
        "default_days = 0\nmin_free_percent = 20.0\ntarget_free_percent = 28.0\n",
        &format!(
            "[[streams]]\nid = \"live\"\nurl = \"{}\"\nsegment_seconds = 2\n",
            server.url("live")
        ),
    );
    let mut d = Daemon::start(&cfg);
    let addr = d.http_addr();
    assert!(wait_for(Duration::from_secs(20), || ffmpeg_children(
        d.pid()
    )
    .len()
        == 1));
    let ffmpeg = ffmpeg_children(d.pid())[0];

    // Fill faster than the camera does: the disk drops below the minimum now.
    set_free(&rec_dir, &ballast, 15.0);
    let crossed = Instant::now();
    assert!(
        wait_for(Duration::from_secs(30), || free_percent(&rec_dir) >= 28.0),
        "free space comes back to the target; it is {:.1}%",
        free_percent(&rec_dir)
    );
    let reaction = crossed.elapsed();
    eprintln!("from below the minimum to the target: {reaction:?}");

    assert!(
        old[..2].iter().all(|p| p.exists()),
        "locked recordings survive"
    );
    let gone = old.iter().filter(|p| !p.exists()).count();
    assert!(gone >= 1, "the oldest unlocked recordings went");
    // Oldest first: whatever survived of the unlocked ones is newer than all that went.
    let first_kept = old[2..].iter().position(|p| p.exists()).unwrap();
    assert!(
        old[2 + first_kept..].iter().all(|p| p.exists()),
        "deleted oldest first"
    );
    assert!(old[7].exists(), "the newest of a stream is never deleted");

    // Recording never stopped: the same ffmpeg, still writing new segments.
    let live_before: Vec<_> = std::fs::read_dir(rec_dir.join("live"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        wait_for(Duration::from_secs(20), || std::fs::read_dir(
            rec_dir.join("live")
        )
        .unwrap()
        .any(|e| !live_before.contains(&e.unwrap().file_name()))),
        "new live segments keep coming"
    );
    assert!(
        pid_alive(ffmpeg) && ffmpeg_children(d.pid()) == vec![ffmpeg],
        "ffmpeg was never restarted"
    );
    let metrics = String::from_utf8(http(&addr, "GET", "/metrics", &[], b"").body).unwrap();
    let deleted =
        format!("wallflower_retention_deletions_total{{reason=\"disk_pressure\"}} {gone}");
    assert!(metrics.contains(&deleted), "{deleted} in {metrics}");

    // Now fill it so far that only locked recordings (and the live stream's newest) are left.
    set_free(&rec_dir, &ballast, 5.0);
    let health = || http(&addr, "GET", "/api/health", &[], b"").json();
    assert!(
        wait_for(Duration::from_secs(30), || {
            let h = health();
            h["status"] == "degraded"
                && h["problems"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p.as_str().unwrap().contains("only locked"))
        }),
        "health says only locked recordings are left: {}",
        health()
    );
    assert!(
        old[..2].iter().all(|p| p.exists()),
        "locked recordings still survive"
    );
    assert!(pid_alive(ffmpeg), "recording goes on even on a full disk");
    std::fs::remove_file(&ballast).unwrap();
    d.signal(Signal::SIGTERM);
    assert!(d.wait(Duration::from_secs(30)).success());
}

/// Age and orphans, driven by a simulated clock over a real index and real files.
#[test]
fn age_and_orphans_follow_a_simulated_clock() {
    use wallflower_nvr::config::Config;
    use wallflower_nvr::index::Store;
    use wallflower_nvr::retention::{Counters, pass};

    let dir = TempDir::new("age");
    let rec_dir = dir.path().join("recordings");
    let seg = common::corpus()
        .iter()
        .find(|f| f.file_name().unwrap().to_str().unwrap().starts_with("20"))
        .unwrap();
    let day = 86_400_000i64;
    let t0 = wallflower_nvr::time::parse_segment_name("2026-06-01_00-00-00.mp4").unwrap();
    for (stream, n) in [("cam", 4i64), ("gone", 3)] {
        std::fs::create_dir_all(rec_dir.join(stream)).unwrap();
        for i in 0..n {
            std::fs::copy(seg, rec_dir.join(stream).join(segment_name(t0 + i * day))).unwrap();
        }
    }
    let junk = rec_dir.join("cam").join("2026-06-02_12-00-00.mp4");
    std::fs::write(&junk, b"not a video").unwrap();
    let store = Store::open(&dir.path().join("index.redb")).unwrap();
    wallflower_nvr::index::indexer::backfill(&store, &rec_dir).unwrap();
    assert_eq!(store.count().unwrap(), 7);
    assert_eq!(store.unindexable_count().unwrap(), 1);

    let text = format!(
        "[storage]\nrecordings_dir = \"{}\"\n[retention]\ndefault_days = 1\n[[streams]]\nid = \"cam\"\nretention_days = 2\n",
        rec_dir.display()
    );
    let config = Config::parse(&text, Path::new("c.toml")).unwrap();
    let counters = Counters::default();
    let junk_mtime_ms = SystemClock.now_ms();

    // Noon of day 2 of the footage: cam keeps 2 days, `gone` (not in the config) keeps the
    // default 1 day but never loses its newest; the junk file is younger than a day.
    pass(&store, &config, &counters, t0 + 2 * day + day / 2, true).unwrap();
    let left = |s: &str| {
        store
            .stream_recordings(s)
            .unwrap()
            .iter()
            .map(|r| (r.start_ms - t0) / day)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        left("cam"),
        [1, 2, 3],
        "cam's day-0 recording ended 2.5 days ago"
    );
    assert_eq!(left("gone"), [2], "gone's days 0 and 1 went by the default");
    assert!(
        !rec_dir.join("cam").join(segment_name(t0)).exists(),
        "the file goes with its record"
    );
    assert!(junk.exists());

    // A day after the junk file was written, it is an orphan; the newest of each stream stays.
    pass(&store, &config, &counters, junk_mtime_ms + day + 1, true).unwrap();
    assert!(!junk.exists());
    assert_eq!(store.unindexable_count().unwrap(), 0);
    assert_eq!(left("cam"), [3]);
    assert_eq!(left("gone"), [2]);
    let counts: Vec<u64> = counters
        .deletions
        .iter()
        .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
        .collect();
    assert_eq!(counts, [5, 0, 1, 0], "age, disk_pressure, orphan, manual");
}
