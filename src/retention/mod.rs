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
//! - A pass reads what it deletes (plus the locked recordings it steps over), a batch at a time,
//!   never the whole index: age reads each stream's records before its cut-off, disk pressure
//!   the oldest of all streams merged in time order, and it stops once the target is met.

pub mod disk;

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
/// How many recordings one read hands to deletion.
const BATCH: usize = 256;

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
        age(store, config, counters, now_ms)?;
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
    'pressure: loop {
        let batch = store.oldest_deletable(BATCH)?;
        for r in &batch {
            if usage.free_percent() >= config.retention.target_free_percent {
                break 'pressure;
            }
            delete(store, dir, r, Reason::DiskPressure, counters)?;
            usage = disk::usage(dir)?;
        }
        if batch.len() < BATCH {
            break;
        }
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

/// Deletes the recordings older than their stream's `retention_days` at `now_ms`. Streams no
/// longer in the config age out by `default_days`, so nothing is orphaned.
fn age(store: &Store, config: &Config, counters: &Counters, now_ms: i64) -> Result<()> {
    for stream in store.streams_held()? {
        let days = config
            .stream(&stream)
            .map_or(config.retention.default_days, |s| s.retention_days);
        if days == 0 {
            continue;
        }
        let cutoff_ms = now_ms.saturating_sub(i64::from(days) * DAY_MS);
        let mut from_ms = i64::MIN;
        loop {
            let (batch, next) = store.aged(&stream, from_ms, cutoff_ms, BATCH)?;
            for r in &batch {
                delete(
                    store,
                    &config.storage.recordings_dir,
                    r,
                    Reason::Age,
                    counters,
                )?;
            }
            match next {
                Some(n) => from_ms = n,
                None => break,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(stream: &str, start_ms: i64, locked: bool) -> Recording {
        Recording {
            id: 0,
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

    /// A store holding `recs`, whose ids are 1, 2, … in order.
    fn store_of(name: &str, recs: Vec<Recording>) -> (std::path::PathBuf, Store) {
        let dir = std::env::temp_dir().join(format!("wf-retention-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir.join("index.redb")).unwrap();
        let changes: Vec<Change> = recs.into_iter().map(Change::Upsert).collect();
        store.apply(&changes).unwrap();
        (dir, store)
    }

    fn ids(store: &Store) -> Vec<u64> {
        let mut v: Vec<u64> = store.all().unwrap().iter().map(|r| r.id).collect();
        v.sort();
        v
    }

    #[test]
    fn age_follows_each_stream_and_the_default_for_removed_ones() {
        let (dir, store) = store_of(
            "age",
            vec![
                rec("a", 3 * DAY_MS, false),       // 1: 7 days old: past a's 5
                rec("a", 6 * DAY_MS, false),       // 2: 4 days: kept
                rec("a", 2 * DAY_MS, true),        // 3: old but locked
                rec("gone", 5 * DAY_MS, false),    // 4: removed stream, 5 days: past the default 2
                rec("gone", 9 * DAY_MS, false),    // 5: 1 day: kept (and the newest of its stream)
                rec("forever", DAY_MS, false),     // 6: 0 = keep forever
                rec("forever", 9 * DAY_MS, false), // 7
                rec("a", 9 * DAY_MS, false),       // 8: newest of a
            ],
        );
        let text = format!(
            "[storage]\nrecordings_dir = \"{}\"\n[retention]\ndefault_days = 2\n\
             [[streams]]\nid = \"a\"\nretention_days = 5\n\
             [[streams]]\nid = \"forever\"\nretention_days = 0\n",
            dir.join("rec").display()
        );
        let c = Config::parse(&text, Path::new("c.toml")).unwrap();
        let counters = Counters::default();
        // A simulated clock: day 10.
        age(&store, &c, &counters, 10 * DAY_MS).unwrap();
        assert_eq!(ids(&store), [2, 3, 5, 6, 7, 8]);
        // A day later, a's day-6 recording is 5 days and a minute old.
        age(&store, &c, &counters, 11 * DAY_MS + 61_000).unwrap();
        assert_eq!(ids(&store), [3, 5, 6, 7, 8]);
        assert_eq!(
            counters.deletions[Reason::Age as usize].load(Ordering::Relaxed),
            3
        );
        // Even the newest of a stream long gone stays, since it may be the file being written.
        age(&store, &c, &counters, 100 * DAY_MS).unwrap();
        assert_eq!(ids(&store), [3, 5, 6, 7, 8]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn age_goes_on_past_a_batch_and_past_locked_recordings() {
        let n = 3 * BATCH as i64 + 8;
        // Every third recording locked: the batches step over them.
        let recs = (0..n).map(|i| rec("a", i * 60_000, i % 3 == 0)).collect();
        let (dir, store) = store_of("batches", recs);
        let text = format!(
            "[storage]\nrecordings_dir = \"{}\"\n[[streams]]\nid = \"a\"\nretention_days = 1\n",
            dir.join("rec").display()
        );
        let c = Config::parse(&text, Path::new("c.toml")).unwrap();
        age(&store, &c, &Counters::default(), 100 * DAY_MS).unwrap();
        let left = store.all().unwrap();
        let unlocked: Vec<i64> = left
            .iter()
            .filter(|r| !r.retention_locked)
            .map(|r| r.start_ms)
            .collect();
        assert_eq!(
            unlocked,
            [(n - 1) * 60_000],
            "only the newest unlocked one stays"
        );
        assert_eq!(left.len() as i64, (n + 2) / 3 + 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn pressure_takes_the_oldest_unlocked_but_never_the_newest_of_a_stream() {
        let (dir, store) = store_of(
            "pressure",
            vec![
                rec("a", 300, false),
                rec("b", 100, true),
                rec("b", 200, false),
                rec("a", 400, false),
                rec("b", 500, false),
                rec("c", 50, false),
            ],
        );
        let order = |limit| -> Vec<u64> {
            store
                .oldest_deletable(limit)
                .unwrap()
                .iter()
                .map(|r| r.id)
                .collect()
        };
        assert_eq!(order(BATCH), [3, 1]);
        assert_eq!(order(1), [3]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
