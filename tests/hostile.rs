//! Crafted MP4 files whose counts claim far more than their bytes hold (`common::hostile`):
//! the probe refuses or skips each within a small, fixed budget, in this process and as the
//! `probe` command.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Cursor;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::TempDir;
use common::hostile::{self, Expect};
use nix::time::{ClockId, clock_gettime};
use wallflower_nvr::media;

/// Counts the bytes allocated now and the most at once since the last reset.
struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = NOW.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        NOW.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The most a probe may hold at once, in this process.
const MAX_ALLOC: usize = 2 << 20;
/// The most the `probe` command's whole process may reach (a release build).
const MAX_RSS_KIB: u64 = 8 << 10;
/// The most a crafted file may add to the `probe` command's peak RSS over a valid one.
const MAX_GROWTH_KIB: u64 = 2 << 10;
/// The CPU time one probe may take.
const MAX_CPU: Duration = Duration::from_millis(100);

fn thread_cpu() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

/// Probes `data` in this process: the answer, the peak of bytes allocated meanwhile, the CPU.
fn probe_here(data: &[u8]) -> (Result<media::Probe, String>, usize, Duration) {
    let cpu0 = thread_cpu();
    PEAK.store(NOW.load(Ordering::Relaxed), Ordering::Relaxed);
    let base = NOW.load(Ordering::Relaxed);
    let r = media::probe(&mut Cursor::new(data), data.len() as u64).map_err(|e| e.to_string());
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    // The fragment index is the other entry point for outside files (playback and live):
    // read whole, with its sidx, and as a file that grows.
    if let Ok(Some(f)) = media::fragments_of(&mut Cursor::new(data), data.len() as u64) {
        let _ = f.sidx_boxes();
    }
    let mut tail = media::Tail::default();
    for len in [data.len() as u64 / 2, data.len() as u64] {
        if let Ok(Some(f)) = tail.next(&mut Cursor::new(data), len) {
            let _ = f.sidx_boxes();
        }
    }
    let peak = peak.max(PEAK.load(Ordering::Relaxed).saturating_sub(base));
    (r, peak, thread_cpu() - cpu0)
}

/// Runs `wallflower-nvr probe PATH` under GNU time (a small parent, so the peak RSS it reports
/// is the probe's own): its JSON line, exit code, peak RSS in KiB and CPU time.
fn probe_command(path: &std::path::Path) -> (serde_json::Value, i32, u64, Duration) {
    let stats = path.with_extension("time");
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M %U %S", "-o"])
        .arg(&stats)
        .arg(common::bin())
        .arg("probe")
        .arg(path)
        .output()
        .expect("GNU time runs (`bash .ci/setup --test` installs it)");
    let line = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let stats = std::fs::read_to_string(&stats).unwrap();
    let last = stats.lines().last().unwrap_or_default();
    let f: Vec<&str> = last.split(' ').collect();
    assert_eq!(f.len(), 3, "time said {stats:?}");
    let secs = |s: &str| Duration::from_secs_f64(s.parse().unwrap());
    (
        line,
        out.status.code().unwrap_or(-1),
        f[0].parse().unwrap(),
        secs(f[1]) + secs(f[2]),
    )
}

/// The tests here run one at a time: the allocation count is the whole process's.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn crafted_counts_are_refused_or_skipped_within_a_small_budget() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    assert!(media::PROBE_BUDGET < MAX_ALLOC as u64);
    let dir = TempDir::new("hostile");
    let valid = hostile::valid();
    let want = media::probe(&mut Cursor::new(&valid), valid.len() as u64).unwrap();
    assert_eq!(
        (
            want.duration_us,
            want.fragmented,
            want.truncated,
            want.video_codec.as_deref()
        ),
        (66_667, true, false, Some("hevc"))
    );
    assert_eq!((want.width, want.height), (320, 240));

    let valid_path = dir.path().join("valid.mp4");
    std::fs::write(&valid_path, &valid).unwrap();
    let (_, _, baseline_kib, _) = probe_command(&valid_path);
    // A debug build's own pages come to about 10 MB before it reads a byte; what a crafted file
    // may add on top is the same in both builds.
    let max_rss_kib = if cfg!(debug_assertions) {
        baseline_kib + MAX_GROWTH_KIB
    } else {
        MAX_RSS_KIB
    };
    println!("probe command on the valid file: {baseline_kib} KiB peak RSS");
    let mut largest_kib = 0;
    for (name, expect, data) in hostile::cases() {
        let (got, peak, cpu) = probe_here(&data);
        println!(
            "{name}: {} bytes, {peak} bytes allocated at most, {} µs CPU: {got:?}",
            data.len(),
            cpu.as_micros()
        );
        match expect {
            Expect::Same => assert_eq!(got.as_ref(), Ok(&want), "{name}"),
            Expect::Truncated => {
                let p = got.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(p.truncated && p.duration_us == 0, "{name}: {p:?}");
            }
            Expect::Error => assert!(got.is_err(), "{name}: {got:?}"),
        }
        assert!(peak < MAX_ALLOC, "{name}: {peak} bytes allocated");
        assert!(cpu < MAX_CPU, "{name}: {cpu:?} of CPU");

        // The same file through the `probe` command: its whole process stays small and quick.
        let path = dir.path().join(format!("{name}.mp4"));
        std::fs::write(&path, &data).unwrap();
        let (line, code, rss_kib, cpu) = probe_command(&path);
        println!(
            "  probe command: {rss_kib} KiB peak RSS, {} ms CPU",
            cpu.as_millis()
        );
        assert_eq!(
            code,
            if expect == Expect::Error { 1 } else { 0 },
            "{name}: {line}"
        );
        assert_eq!(
            line.get("error").is_some(),
            expect == Expect::Error,
            "{name}: {line}"
        );
        assert!(
            rss_kib <= max_rss_kib,
            "{name}: the probe command reached {rss_kib} KiB"
        );
        assert!(cpu < MAX_CPU, "{name}: {cpu:?} of CPU");
        largest_kib = largest_kib.max(rss_kib);
    }
    println!("largest probe command: {largest_kib} KiB");
}

/// Every input the fuzzers ever found (`tests/fuzz/run.sh`) stays within the same budget.
#[test]
fn the_fuzzers_findings_stay_within_the_budget() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/regressions");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let (got, peak, cpu) = probe_here(&data);
        println!(
            "{}: {peak} bytes at most, {} µs CPU: {got:?}",
            path.display(),
            cpu.as_micros()
        );
        assert!(
            peak < MAX_ALLOC,
            "{}: {peak} bytes allocated",
            path.display()
        );
        assert!(cpu < MAX_CPU, "{}: {cpu:?} of CPU", path.display());
        n += 1;
    }
    assert!(n > 0, "the regression corpus is in {}", dir.display());
}
