//! The indexer: keeps the index level with the segment files on disk.
//!
//! At start a backfill indexes every file the index lacks (or whose size or mtime changed) and
//! drops every record whose file has gone. Then raw inotify reports each finished file
//! (`IN_CLOSE_WRITE`, `IN_MOVED_TO`) and each removed one; `IN_Q_OVERFLOW` triggers the backfill
//! again. Invariants:
//! - The files are the truth. Nothing here deletes or changes a file; a file that cannot be
//!   indexed is recorded as unindexable, never silently skipped.
//! - Watches are set before the backfill reads the folders, so no file falls between the two.
//! - The indexer runs on its own thread and nothing waits on it: the recorder writes files and
//!   the indexer catches up.
//! - A recording is locked when its file is read-only (`chmod a-w`), so locks survive a rebuild.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::fs::Metadata;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::config::valid_stream_id;
use crate::daemon::watchdog::{self, Heartbeat};
use crate::error::{Error, Result};
use crate::index::{Change, Recording, Store, Unindexable};
use crate::media;
use crate::time;

/// How many changes go into one index transaction during a backfill.
const BATCH: usize = 2048;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BackfillReport {
    pub files: usize,
    pub probed: usize,
    pub indexed: usize,
    pub unindexable: usize,
    pub removed: usize,
    pub elapsed_ms: u64,
}

/// A segment file found on disk.
struct Found {
    stream_id: String,
    name: String,
    size: u64,
    mtime_ms: i64,
    locked: bool,
}

impl Found {
    fn from_meta(stream_id: &str, name: &str, m: &Metadata) -> Found {
        Found {
            stream_id: stream_id.to_owned(),
            name: name.to_owned(),
            size: m.len(),
            mtime_ms: m
                .mtime()
                .saturating_mul(1000)
                .saturating_add(m.mtime_nsec() / 1_000_000),
            locked: m.mode() & 0o222 == 0,
        }
    }

    fn rel_path(&self) -> String {
        format!("{}/{}", self.stream_id, self.name)
    }

    fn unindexable(&self, why: String) -> Change {
        Change::Unindexable(Unindexable {
            file_path: self.rel_path(),
            file_size_bytes: self.size,
            mtime_ms: self.mtime_ms,
            why,
        })
    }
}

/// Probes one file and says what the index should learn of it.
fn index_change(root: &Path, f: &Found) -> Change {
    let Some(start_ms) = time::parse_segment_name(&f.name) else {
        return f.unindexable("the name is not YYYY-mm-dd_HH-MM-SS.mp4 (UTC)".into());
    };
    match media::probe_file(&root.join(&f.stream_id).join(&f.name)) {
        Ok(p) => Change::Upsert(Recording {
            id: 0,
            stream_id: f.stream_id.clone(),
            start_ms,
            duration_us: p.duration_us,
            file_size_bytes: f.size,
            mtime_ms: f.mtime_ms,
            retention_locked: f.locked,
            truncated: p.truncated,
            video_codec: p.video_codec,
            width: p.width,
            height: p.height,
            audio_codec: p.audio_codec,
        }),
        Err(e) => f.unindexable(e.to_string()),
    }
}

fn is_stream_dir(name: &OsStr) -> Option<&str> {
    name.to_str().filter(|n| valid_stream_id(n))
}

fn is_segment_file(name: &OsStr) -> Option<&str> {
    name.to_str()
        .filter(|n| n.ends_with(".mp4") && !n.starts_with('.'))
}

/// The stream folders under `root`.
fn stream_dirs(root: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let dirs = match std::fs::read_dir(root) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::from(e).context(root.display())),
    };
    for d in dirs {
        let d = d?;
        let Some(stream_id) = is_stream_dir(&d.file_name()).map(str::to_owned) else {
            continue;
        };
        if d.file_type()?.is_dir() {
            out.push(stream_id);
        }
    }
    Ok(out)
}

fn scan_stream(dir: &Path, stream_id: &str, out: &mut Vec<Found>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::from(e).context(dir.display())),
    };
    for e in entries {
        let e = e?;
        let Some(name) = is_segment_file(&e.file_name()).map(str::to_owned) else {
            continue;
        };
        let Ok(m) = e.metadata() else { continue };
        if m.is_file() && m.len() > 0 {
            out.push(Found::from_meta(stream_id, &name, &m));
        }
    }
    Ok(())
}

/// Probes `files` on every core; the order of the result follows `files`.
fn probe_all(root: &Path, files: &[&Found]) -> Vec<Change> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len().max(1));
    let chunk = files.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(|f| index_change(root, f)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// Brings the index level with the files under `root`, one stream at a time: a stream's files
/// are merged in order with its records, so memory follows the largest stream, not all footage.
pub fn backfill(store: &Store, root: &Path) -> Result<BackfillReport> {
    let t0 = Instant::now();
    let mut known_bad: HashMap<String, (u64, i64)> = store
        .unindexable()?
        .into_iter()
        .map(|u| (u.file_path, (u.file_size_bytes, u.mtime_ms)))
        .collect();
    // Streams with a folder, and streams whose folder has gone (their records go too).
    let mut streams: BTreeSet<String> = stream_dirs(root)?.into_iter().collect();
    streams.extend(store.streams_held()?);
    let mut report = BackfillReport::default();
    for stream_id in &streams {
        backfill_stream(store, root, stream_id, &mut known_bad, &mut report)?;
    }
    let changes: Vec<Change> = known_bad
        .into_keys()
        .map(|file_path| Change::Indexable { file_path })
        .collect();
    for batch in changes.chunks(BATCH) {
        store.apply(batch)?;
    }
    report.elapsed_ms = time::duration_ms(t0.elapsed());
    Ok(report)
}

fn backfill_stream(
    store: &Store,
    root: &Path,
    stream_id: &str,
    known_bad: &mut HashMap<String, (u64, i64)>,
    report: &mut BackfillReport,
) -> Result<()> {
    let mut files = Vec::new();
    scan_stream(&root.join(stream_id), stream_id, &mut files)?;
    let mut named: Vec<(i64, usize)> = Vec::with_capacity(files.len());
    let mut stale: Vec<usize> = Vec::new();
    for (i, f) in files.iter().enumerate() {
        match time::parse_segment_name(&f.name) {
            Some(ms) => named.push((ms, i)),
            None => stale.push(i),
        }
    }
    named.sort_unstable();
    let stats: Vec<(i64, (u64, i64, bool))> = named
        .iter()
        .map(|&(ms, i)| (ms, (files[i].size, files[i].mtime_ms, files[i].locked)))
        .collect();
    let (changed, gone) = store.diff_stream(stream_id, &stats)?;
    stale.extend(changed.into_iter().map(|k| named[k].1));
    drop(stats);
    drop(named);
    // A file already known as unindexable is not probed again until it changes.
    if !known_bad.is_empty() {
        stale.retain(|&i| {
            let f = &files[i];
            known_bad.get(&f.rel_path()) != Some(&(f.size, f.mtime_ms))
        });
        for f in &files {
            known_bad.remove(&f.rel_path());
        }
    }
    stale.sort_unstable();
    report.files += files.len();
    report.probed += stale.len();
    // Probed and committed a batch at a time, so a crash keeps what was done and memory stays flat.
    for chunk in stale.chunks(BATCH) {
        let batch: Vec<&Found> = chunk.iter().map(|&i| &files[i]).collect();
        let changes = probe_all(root, &batch);
        for c in &changes {
            match c {
                Change::Upsert(_) => report.indexed += 1,
                _ => report.unindexable += 1,
            }
        }
        store.apply(&changes)?;
    }
    report.removed += gone.len();
    for batch in gone.chunks(BATCH) {
        let changes: Vec<Change> = batch
            .iter()
            .map(|&start_ms| Change::Remove {
                stream_id: stream_id.to_owned(),
                start_ms,
            })
            .collect();
        store.apply(&changes)?;
    }
    Ok(())
}

/// Stops the indexer thread when dropped or when [`Stopper::stop`] is called.
pub struct Stopper {
    tx: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl Stopper {
    /// Stops the thread after it has applied what it already read, and waits for it.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Stopper {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// Starts the indexer thread: watches, then the backfill, then events until stopped.
/// `ready` is called once the first backfill is done.
pub fn spawn(
    store: Arc<Store>,
    root: PathBuf,
    ready: impl FnOnce(&BackfillReport) + Send + 'static,
    beat: Heartbeat,
) -> Result<Stopper> {
    std::fs::create_dir_all(&root)
        .map_err(|e| Error::from(e).context(format!("creating {}", root.display())))?;
    let (rx, tx) = nix::unistd::pipe().map_err(|e| Error::internal(format!("pipe: {e}")))?;
    let mut w = Watcher::new(store, root)?;
    let thread = std::thread::Builder::new()
        .name("indexer".into())
        .spawn(move || {
            match backfill(&w.store, &w.root) {
                Ok(r) => {
                    log::info!(
                        "backfill: {} files, {} probed, {} indexed, {} unindexable, {} records dropped in {} ms",
                        r.files,
                        r.probed,
                        r.indexed,
                        r.unindexable,
                        r.removed,
                        r.elapsed_ms
                    );
                    ready(&r);
                }
                Err(e) => log::error!("backfill: {e}"),
            }
            if let Err(e) = w.run(&rx, &beat) {
                log::error!("indexer stopped: {e}");
            }
        })
        .map_err(|e| Error::internal(format!("indexer thread: {e}")))?;
    Ok(Stopper {
        tx: Some(tx),
        thread: Some(thread),
    })
}

const STREAM_MASK: WatchMask = WatchMask::CLOSE_WRITE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::DELETE)
    .union(WatchMask::ONLYDIR);
const ROOT_MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::ONLYDIR);

struct Watcher {
    store: Arc<Store>,
    root: PathBuf,
    inotify: Inotify,
    root_wd: WatchDescriptor,
    streams: HashMap<WatchDescriptor, String>,
}

impl Watcher {
    fn new(store: Arc<Store>, root: PathBuf) -> Result<Watcher> {
        let inotify = Inotify::init().map_err(|e| Error::from(e).context("inotify"))?;
        let root_wd = inotify
            .watches()
            .add(&root, ROOT_MASK)
            .map_err(|e| Error::from(e).context(root.display()))?;
        let mut w = Watcher {
            store,
            root,
            inotify,
            root_wd,
            streams: HashMap::new(),
        };
        for d in std::fs::read_dir(&w.root)? {
            let d = d?;
            if let Some(id) = is_stream_dir(&d.file_name())
                && d.file_type()?.is_dir()
            {
                w.watch_stream(id);
            }
        }
        Ok(w)
    }

    fn watch_stream(&mut self, id: &str) {
        let dir = self.root.join(id);
        match self.inotify.watches().add(&dir, STREAM_MASK) {
            Ok(wd) => {
                self.streams.insert(wd, id.to_owned());
            }
            Err(e) => log::warn!("cannot watch {}: {e}", dir.display()),
        }
    }

    fn run(&mut self, stop: &OwnedFd, beat: &Heartbeat) -> Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        let beat_ms = PollTimeout::try_from(watchdog::BEAT).unwrap_or(PollTimeout::MAX);
        loop {
            beat.beat();
            watchdog::hang_if_faulted("indexer");
            let mut fds = [
                PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN),
                PollFd::new(stop.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, beat_ms) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::internal(format!("poll: {e}"))),
            }
            let stopping = fds[1].any().unwrap_or(true);
            self.drain(&mut buf)?;
            if stopping {
                return Ok(());
            }
        }
    }

    /// Reads every queued event and applies what they mean in one transaction.
    fn drain(&mut self, buf: &mut [u8]) -> Result<()> {
        let mut touched: Vec<(String, String)> = Vec::new();
        let mut removed: Vec<(String, String)> = Vec::new();
        let mut new_dirs: Vec<String> = Vec::new();
        let mut rescan = false;
        loop {
            let events = match self.inotify.read_events(buf) {
                Ok(ev) => ev,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(Error::from(e).context("inotify")),
            };
            let mut any = false;
            for ev in events {
                any = true;
                if ev.mask.contains(EventMask::Q_OVERFLOW) {
                    rescan = true;
                    continue;
                }
                if ev.mask.contains(EventMask::IGNORED) {
                    self.streams.remove(&ev.wd);
                    continue;
                }
                let Some(name) = ev.name else { continue };
                if ev.wd == self.root_wd {
                    if ev.mask.contains(EventMask::ISDIR)
                        && let Some(id) = is_stream_dir(name)
                    {
                        new_dirs.push(id.to_owned());
                    }
                    continue;
                }
                let (Some(stream), Some(file)) = (self.streams.get(&ev.wd), is_segment_file(name))
                else {
                    continue;
                };
                let item = (stream.clone(), file.to_owned());
                if ev
                    .mask
                    .intersects(EventMask::DELETE | EventMask::MOVED_FROM)
                {
                    touched.retain(|t| t != &item);
                    removed.push(item);
                } else {
                    removed.retain(|t| t != &item);
                    if !touched.contains(&item) {
                        touched.push(item);
                    }
                }
            }
            if !any {
                break;
            }
        }
        for id in new_dirs {
            if !self.streams.values().any(|s| s == &id) {
                self.watch_stream(&id);
            }
            // Files may have been written before the watch was in place.
            let mut found = Vec::new();
            scan_stream(&self.root.join(&id), &id, &mut found)?;
            touched.extend(found.into_iter().map(|f| (f.stream_id, f.name)));
        }
        if rescan {
            log::warn!(
                "inotify queue overflowed; rescanning {}",
                self.root.display()
            );
            backfill(&self.store, &self.root)?;
            return Ok(());
        }
        let mut changes = Vec::new();
        for (stream_id, name) in removed {
            if let Some(start_ms) = time::parse_segment_name(&name) {
                changes.push(Change::Remove {
                    stream_id,
                    start_ms,
                });
            } else {
                changes.push(Change::Indexable {
                    file_path: format!("{stream_id}/{name}"),
                });
            }
        }
        for (stream_id, name) in touched {
            let Ok(m) = std::fs::metadata(self.root.join(&stream_id).join(&name)) else {
                continue;
            };
            if !m.is_file() || m.len() == 0 {
                continue;
            }
            let f = Found::from_meta(&stream_id, &name, &m);
            let c = index_change(&self.root, &f);
            match &c {
                Change::Upsert(r) => log::debug!("indexed {} ({} µs)", f.rel_path(), r.duration_us),
                Change::Unindexable(u) => log::warn!("cannot index {}: {}", u.file_path, u.why),
                _ => {}
            }
            changes.push(c);
        }
        if !changes.is_empty() {
            self.store.apply(&changes)?;
        }
        Ok(())
    }
}
