//! Retention: deletes recordings by age and under disk pressure, and old files that could not
//! be indexed.
//!
//! Invariants:
//! - A locked recording is never deleted, nor is the newest recording of a stream (it may be
//!   the file being written).
//! - The file goes first, then its record: a crash in between leaves a record without a file,
//!   which the next backfill drops. Nothing is left that startup cannot reconcile.
//! - Age and orphans use the injected wall clock, every `check_interval_seconds`. Disk pressure
//!   (one `statvfs`) is checked on every nudge (the recorder nudges while files grow, every
//!   couple of seconds) and on every turn of the loop, which comes round at least every
//!   `watchdog::BEAT` for its heartbeat, so a disk that fills fast is caught within seconds.
//! - Every deletion is logged with its reason and counted.

pub mod disk;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::Duration;

use crate::config::Config;
use crate::daemon::watchdog::{self, Heartbeat};
use crate::error::{Error, Result};
use crate::index::{Change, Recording, Store};
use crate::time::Clock;

const DAY_MS: i64 = 86_400_000;

/// Why a recording was deleted, as logged and counted in `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Age = 0,
    DiskPressure = 1,
    Orphan = 2,
    Manual = 3,
}

pub const REASONS: [&str; 4] = ["age", "disk_pressure", "orphan", "manual"];

/// What retention reports to the rest of the daemon.
#[derive(Default)]
pub struct Counters {
    pub deletions: [AtomicU64; 4],
    /// The disk is below the target and only locked recordings are left to delete.
    pub short_with_only_locked: AtomicBool,
}

impl Counters {
    pub fn count(&self, why: Reason) {
        self.deletions[why as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Deletes `rec`'s file, then its record, and counts it.
pub fn delete(
    store: &Store,
    recordings_dir: &Path,
    rec: &Recording,
    why: Reason,
    counters: &Counters,
) -> Result<()> {
    match std::fs::remove_file(recordings_dir.join(rec.file_path())) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::from(e).context(rec.file_path())),
    }
    store.apply(&[Change::Remove {
        stream_id: rec.stream_id.clone(),
        start_ms: rec.start_ms,
    }])?;
    counters.count(why);
    log::info!(
        "deleted {} ({} MB): {}",
        rec.file_path(),
        rec.file_size_bytes / 1_000_000,
        REASONS[why as usize]
    );
    Ok(())
}

/// The recordings that are older than their stream's `retention_days` at `now_ms`. Streams no
/// longer in the config age out by `default_days`, so nothing is orphaned.
pub fn expired<'r>(recs: &'r [Recording], config: &Config, now_ms: i64) -> Vec<&'r Recording> {
    let newest = newest_per_stream(recs);
    recs.iter()
        .filter(|r| {
            let days = config
                .stream(&r.stream_id)
                .map_or(config.retention.default_days, |s| s.retention_days);
            let end_ms = r.end_us().div_euclid(1000);
            days > 0
                && !r.retention_locked
                && newest.get(r.stream_id.as_str()) != Some(&r.start_ms)
                && end_ms < now_ms - i64::from(days) * DAY_MS
        })
        .collect()
}

/// What disk pressure may delete, oldest first across all streams.
pub fn pressure_order(recs: &[Recording]) -> Vec<&Recording> {
    let newest = newest_per_stream(recs);
    let mut v: Vec<&Recording> = recs
        .iter()
        .filter(|r| !r.retention_locked && newest.get(r.stream_id.as_str()) != Some(&r.start_ms))
        .collect();
    v.sort_by_key(|r| (r.start_ms, r.id));
    v
}

fn newest_per_stream(recs: &[Recording]) -> HashMap<&str, i64> {
    let mut m: HashMap<&str, i64> = HashMap::new();
    for r in recs {
        let e = m.entry(r.stream_id.as_str()).or_insert(r.start_ms);
        *e = (*e).max(r.start_ms);
    }
    m
}

/// The retention thread's handle; dropping it stops the thread.
pub struct Retention {
    nudge: SyncSender<()>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Retention {
    /// A sender that makes retention check the disk now (it never blocks; nudges coalesce).
    pub fn nudger(&self) -> SyncSender<()> {
        self.nudge.clone()
    }

    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.nudge.try_send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Retention {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// Starts the retention thread. `config` gives the config in force at each pass.
pub fn spawn(
    store: Arc<Store>,
    config: Arc<dyn Fn() -> Arc<Config> + Send + Sync>,
    counters: Arc<Counters>,
    clock: Arc<dyn Clock>,
    beat: Heartbeat,
) -> Result<Retention> {
    let (nudge, rx) = std::sync::mpsc::sync_channel(1);
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::Builder::new()
        .name("retention".into())
        .spawn(move || run(&store, &*config, &counters, &*clock, &rx, &stopping, &beat))
        .map_err(|e| Error::internal(format!("retention thread: {e}")))?;
    Ok(Retention {
        nudge,
        stop,
        thread: Some(thread),
    })
}

fn run(
    store: &Store,
    config: &(dyn Fn() -> Arc<Config> + Send + Sync),
    counters: &Counters,
    clock: &dyn Clock,
    rx: &Receiver<()>,
    stop: &AtomicBool,
    beat: &Heartbeat,
) {
    let mut next_full = clock.monotonic();
    loop {
        beat.beat();
        watchdog::hang_if_faulted("retention");
        let c = config();
        let now = clock.monotonic();
        let full = now >= next_full;
        if full {
            next_full = now + Duration::from_secs(u64::from(c.retention.check_interval_seconds));
        }
        if let Err(e) = pass(store, &c, counters, clock.now_ms(), full) {
            log::error!("retention: {e}");
        }
        let wait = next_full
            .saturating_duration_since(clock.monotonic())
            .min(watchdog::BEAT);
        match rx.recv_timeout(wait) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
    }
}

/// One pass: disk pressure always; age and orphans when `full`.
pub fn pass(
    store: &Store,
    config: &Config,
    counters: &Counters,
    now_ms: i64,
    full: bool,
) -> Result<()> {
    let dir = &config.storage.recordings_dir;
    if full {
        let recs = store.all()?;
        for r in expired(&recs, config, now_ms) {
            delete(store, dir, r, Reason::Age, counters)?;
        }
        for u in store.unindexable()? {
            if u.mtime_ms < now_ms - DAY_MS {
                match std::fs::remove_file(dir.join(&u.file_path)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::from(e).context(&u.file_path)),
                }
                store.apply(&[Change::Indexable {
                    file_path: u.file_path.clone(),
                }])?;
                counters.count(Reason::Orphan);
                log::info!(
                    "deleted {} (could not be indexed: {}): orphan",
                    u.file_path,
                    u.why
                );
            }
        }
    }
    let mut usage = disk::usage(dir)?;
    if usage.free_percent() >= config.retention.min_free_percent {
        counters
            .short_with_only_locked
            .store(false, Ordering::Relaxed);
        return Ok(());
    }
    let recs = store.all()?;
    for r in pressure_order(&recs) {
        if usage.free_percent() >= config.retention.target_free_percent {
            break;
        }
        delete(store, dir, r, Reason::DiskPressure, counters)?;
        usage = disk::usage(dir)?;
    }
    let short = usage.free_percent() < config.retention.target_free_percent;
    if short {
        log::warn!(
            "disk: {:.1}% free, below the target of {}%, and nothing unlocked is left to delete",
            usage.free_percent(),
            config.retention.target_free_percent
        );
    }
    counters
        .short_with_only_locked
        .store(short, Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64, stream: &str, start_ms: i64, locked: bool) -> Recording {
        Recording {
            id,
            stream_id: stream.into(),
            start_ms,
            duration_us: 60_000_000,
            file_size_bytes: 1,
            mtime_ms: 0,
            retention_locked: locked,
            truncated: false,
            video_codec: None,
            width: 0,
            height: 0,
            audio_codec: None,
        }
    }

    #[test]
    fn age_follows_each_stream_and_the_default_for_removed_ones() {
        let text = "[retention]\ndefault_days = 2\n[[streams]]\nid = \"a\"\nretention_days = 5\n\
                    [[streams]]\nid = \"forever\"\nretention_days = 0\n";
        let c = Config::parse(text, Path::new("c.toml")).unwrap();
        // A simulated clock: day 10.
        let now = 10 * DAY_MS;
        let recs = vec![
            rec(1, "a", 3 * DAY_MS, false),       // 7 days old: past a's 5
            rec(2, "a", 6 * DAY_MS, false),       // 4 days: kept
            rec(3, "a", 2 * DAY_MS, true),        // old but locked
            rec(4, "gone", 5 * DAY_MS, false),    // removed stream, 5 days: past the default 2
            rec(5, "gone", 9 * DAY_MS, false),    // 1 day: kept (and the newest of its stream)
            rec(6, "forever", DAY_MS, false),     // 0 = keep forever
            rec(7, "forever", 9 * DAY_MS, false), //
            rec(8, "a", 9 * DAY_MS, false),       // newest of a
        ];
        let ids: Vec<u64> = expired(&recs, &c, now).iter().map(|r| r.id).collect();
        assert_eq!(ids, [1, 4]);
        // A day later, a's day-6 recording is 5 days and a minute old.
        let ids: Vec<u64> = expired(&recs, &c, now + DAY_MS + 61_000)
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, [1, 2, 4]);
    }

    #[test]
    fn pressure_takes_the_oldest_unlocked_but_never_the_newest_of_a_stream() {
        let recs = vec![
            rec(1, "a", 300, false),
            rec(2, "b", 100, true),
            rec(3, "b", 200, false),
            rec(4, "a", 400, false),
            rec(5, "b", 500, false),
            rec(6, "c", 50, false),
        ];
        let ids: Vec<u64> = pressure_order(&recs).iter().map(|r| r.id).collect();
        assert_eq!(ids, [3, 1]);
    }
}
