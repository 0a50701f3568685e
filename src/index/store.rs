//! The store: opening the index (moving aside one it cannot use) and every query.
//!
//! Invariants:
//! - The index is a cache of the segment files; it can always be rebuilt from them. An index of
//!   the previous schema version is migrated in place; one of an unknown version, or one redb
//!   cannot open, is moved aside and rebuilt by the backfill.
//! - redb's page cache is bounded ([`CACHE_BYTES`]).
//! - Recordings are keyed by `(stream_id, start_ms)`; a recording's integer id is handed out
//!   once and never reused, and re-indexing the same file keeps its id.
//! - All calls block: async callers use `spawn_blocking`.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::derived::{self, Derived};
use super::schema::*;
use crate::error::{Error, Kind, Result};
use crate::time;

/// redb's page cache. Queries read few pages each (the derived tables answer the periodic ones),
/// and the kernel's page cache keeps the file's hot pages anyway; redb's default is 1 GiB.
pub const CACHE_BYTES: usize = 4 << 20;

pub struct Store {
    pub(super) db: Database,
    path: PathBuf,
    /// Bumped by every committed change, so readers can cache answers until it moves.
    generation: std::sync::atomic::AtomicU64,
}

impl Store {
    /// Opens the index at `path`, creating it (and its folder) if needed. An index of another
    /// schema version or one that cannot be opened is renamed aside and a new one is created.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::from(e).context(format!("creating {}", dir.display())))?;
        }
        match Self::open_checked(path) {
            Ok(s) => Ok(s),
            Err(e) if matches!(e.kind, Kind::Schema | Kind::Corrupt) && path.exists() => {
                let aside = path.with_extension(format!("redb.broken-{}", std::process::id()));
                log::warn!(
                    "index {}: {e}; moving it to {} and rebuilding from the files",
                    path.display(),
                    aside.display()
                );
                std::fs::rename(path, &aside)?;
                Self::open_checked(path)
            }
            Err(e) => Err(e),
        }
    }

    fn open_checked(path: &Path) -> Result<Store> {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)?;
        let tx = db.begin_write()?;
        {
            let mut meta = tx.open_table(META)?;
            let version = meta.get(KEY_SCHEMA)?.map(|v| v.value());
            match version {
                None => {
                    meta.insert(KEY_SCHEMA, SCHEMA_VERSION)?;
                    meta.insert(KEY_NEXT_ID, 1)?;
                }
                Some(SCHEMA_VERSION) => {}
                Some(1) => {
                    let t0 = std::time::Instant::now();
                    let n = derived::migrate_1_to_2(&tx)?;
                    meta.insert(KEY_SCHEMA, SCHEMA_VERSION)?;
                    log::info!(
                        "index {}: schema 1 migrated to {SCHEMA_VERSION} from its {n} recordings \
                         in {} ms",
                        path.display(),
                        t0.elapsed().as_millis()
                    );
                }
                Some(v) => {
                    return Err(Error::new(
                        Kind::Schema,
                        format!("schema version {v}, this build reads {SCHEMA_VERSION}"),
                    ));
                }
            }
            tx.open_table(RECORDINGS)?;
            tx.open_table(IDS)?;
            tx.open_table(UNINDEXABLE)?;
            tx.open_table(TOTALS)?;
            tx.open_table(HOURS)?;
        }
        tx.commit()?;
        Ok(Store {
            db,
            path: path.to_owned(),
            generation: Default::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Applies `changes` in one transaction; returns the stored recordings of the upserts.
    pub fn apply(&self, changes: &[Change]) -> Result<Vec<Recording>> {
        let tx = self.db.begin_write()?;
        let mut stored = Vec::new();
        {
            let mut meta = tx.open_table(META)?;
            let mut recs = tx.open_table(RECORDINGS)?;
            let mut ids = tx.open_table(IDS)?;
            let mut bad = tx.open_table(UNINDEXABLE)?;
            let mut derived = Derived::open(&tx)?;
            let mut next_id = meta.get(KEY_NEXT_ID)?.map_or(1, |v| v.value());
            for c in changes {
                match c {
                    Change::Upsert(n) => {
                        let key = (n.stream_id.as_str(), n.start_ms);
                        let old = match recs.get(key)? {
                            Some(v) => {
                                Some(Recording::decode(&n.stream_id, n.start_ms, v.value())?)
                            }
                            None => None,
                        };
                        if let Some(old) = &old {
                            derived.remove(old)?;
                        }
                        let id = old.map_or_else(
                            || {
                                next_id += 1;
                                next_id - 1
                            },
                            |o| o.id,
                        );
                        let rec = Recording { id, ..n.clone() };
                        recs.insert(key, rec.encode().as_slice())?;
                        derived.add(&rec)?;
                        ids.insert(id, key)?;
                        bad.remove(rec.file_path().as_str())?;
                        stored.push(rec);
                    }
                    Change::Remove {
                        stream_id,
                        start_ms,
                    } => {
                        bad.remove(
                            format!("{stream_id}/{}", time::segment_name(*start_ms)).as_str(),
                        )?;
                        let removed = recs.remove((stream_id.as_str(), *start_ms))?;
                        if let Some(v) = removed {
                            let old = Recording::decode(stream_id, *start_ms, v.value())?;
                            drop(v);
                            ids.remove(old.id)?;
                            derived.remove(&old)?;
                        }
                    }
                    Change::Unindexable(u) => {
                        bad.insert(
                            u.file_path.as_str(),
                            (u.file_size_bytes, u.mtime_ms, u.why.as_str()),
                        )?;
                    }
                    Change::Indexable { file_path } => {
                        bad.remove(file_path.as_str())?;
                    }
                }
            }
            meta.insert(KEY_NEXT_ID, next_id)?;
        }
        tx.commit()?;
        self.changed();
        Ok(stored)
    }

    fn changed(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Changes with every committed change to the index.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn get(&self, id: u64) -> Result<Recording> {
        let tx = self.db.begin_read()?;
        let ids = tx.open_table(IDS)?;
        let recs = tx.open_table(RECORDINGS)?;
        let not_found = || Error::not_found(format!("no recording {id}"));
        let key = ids.get(id)?.ok_or_else(not_found)?;
        let (stream, start) = key.value();
        let v = recs.get((stream, start))?.ok_or_else(not_found)?;
        Recording::decode(stream, start, v.value())
    }

    /// The recording of `stream_id` that starts at `start_ms`.
    pub fn get_by_key(&self, stream_id: &str, start_ms: i64) -> Result<Option<Recording>> {
        let tx = self.db.begin_read()?;
        let recs = tx.open_table(RECORDINGS)?;
        let v = recs.get((stream_id, start_ms))?;
        v.map(|v| Recording::decode(stream_id, start_ms, v.value()))
            .transpose()
    }

    /// The recordings of `stream_id` that overlap `[start_us, end_us]`, oldest first.
    pub fn overlapping(
        &self,
        stream_id: &str,
        start_us: Option<i64>,
        end_us: Option<i64>,
    ) -> Result<Vec<Recording>> {
        let tx = self.db.begin_read()?;
        let recs = tx.open_table(RECORDINGS)?;
        let from_ms = start_us.map_or(i64::MIN, |us| us.div_euclid(1000));
        let to_ms = end_us.map_or(i64::MAX, |us| us.div_euclid(1000));
        let mut out = Vec::new();
        // Segments of one stream do not overlap each other, so only the one that starts last
        // before the window can reach into it.
        if let Some(r) = recs
            .range((stream_id, i64::MIN)..(stream_id, from_ms))?
            .next_back()
        {
            let (k, v) = r?;
            let rec = Recording::decode(stream_id, k.value().1, v.value())?;
            if start_us.is_none_or(|s| rec.end_us() >= s) {
                out.push(rec);
            }
        }
        for r in recs.range((stream_id, from_ms)..=(stream_id, to_ms))? {
            let (k, v) = r?;
            out.push(Recording::decode(stream_id, k.value().1, v.value())?);
        }
        Ok(out)
    }

    /// The newest recording of `stream_id`.
    pub fn newest(&self, stream_id: &str) -> Result<Option<Recording>> {
        let tx = self.db.begin_read()?;
        let recs = tx.open_table(RECORDINGS)?;
        let last = recs
            .range((stream_id, i64::MIN)..=(stream_id, i64::MAX))?
            .next_back()
            .transpose()?;
        last.map(|(k, v)| Recording::decode(stream_id, k.value().1, v.value()))
            .transpose()
    }

    /// Every recording of `stream_id`, oldest first.
    pub fn stream_recordings(&self, stream_id: &str) -> Result<Vec<Recording>> {
        self.overlapping(stream_id, None, None)
    }

    /// Every recording of every stream, grouped by stream and oldest first within one. It reads
    /// the whole table: for tests and tools, never for anything periodic or per request.
    pub fn all(&self) -> Result<Vec<Recording>> {
        let tx = self.db.begin_read()?;
        let recs = tx.open_table(RECORDINGS)?;
        let mut out = Vec::with_capacity(usize::try_from(recs.len()?).unwrap_or(0));
        for r in recs.iter()? {
            let (k, v) = r?;
            let (stream, start) = k.value();
            out.push(Recording::decode(stream, start, v.value())?);
        }
        Ok(out)
    }

    /// Sets the lock flag of recording `id`; returns the updated recording.
    pub fn set_locked(&self, id: u64, locked: bool) -> Result<Recording> {
        let tx = self.db.begin_write()?;
        let rec = {
            let ids = tx.open_table(IDS)?;
            let mut recs = tx.open_table(RECORDINGS)?;
            let not_found = || Error::not_found(format!("no recording {id}"));
            let (stream, start) = {
                let key = ids.get(id)?.ok_or_else(not_found)?;
                let (s, t) = key.value();
                (s.to_owned(), t)
            };
            let mut rec = {
                let v = recs.get((stream.as_str(), start))?.ok_or_else(not_found)?;
                Recording::decode(&stream, start, v.value())?
            };
            rec.retention_locked = locked;
            recs.insert((stream.as_str(), start), rec.encode().as_slice())?;
            rec
        };
        tx.commit()?;
        self.changed();
        Ok(rec)
    }

    /// Whether the index holds any recording of `stream_id`.
    pub fn has_stream(&self, stream_id: &str) -> Result<bool> {
        let tx = self.db.begin_read()?;
        let recs = tx.open_table(RECORDINGS)?;
        Ok(recs
            .range((stream_id, i64::MIN)..=(stream_id, i64::MAX))?
            .next()
            .is_some())
    }

    /// The size of the index file.
    pub fn file_size_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    pub fn count(&self) -> Result<u64> {
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(RECORDINGS)?.len()?)
    }

    /// Files that could not be indexed, by path.
    pub fn unindexable(&self) -> Result<Vec<Unindexable>> {
        let tx = self.db.begin_read()?;
        let bad = tx.open_table(UNINDEXABLE)?;
        let mut out = Vec::new();
        for r in bad.iter()? {
            let (k, v) = r?;
            let (file_size_bytes, mtime_ms, why) = v.value();
            out.push(Unindexable {
                file_path: k.value().to_owned(),
                file_size_bytes,
                mtime_ms,
                why: why.to_owned(),
            });
        }
        Ok(out)
    }

    pub fn unindexable_count(&self) -> Result<u64> {
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(UNINDEXABLE)?.len()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn rec(stream: &str, start_ms: i64, duration_us: u64) -> Recording {
        Recording {
            id: 0,
            stream_id: stream.into(),
            start_ms,
            duration_us,
            file_size_bytes: 1000,
            mtime_ms: start_ms + 1,
            retention_locked: false,
            truncated: false,
            video_codec: Some("h264".into()),
            width: 1920,
            height: 1080,
            audio_codec: None,
        }
    }

    fn tmp() -> (PathBuf, Store) {
        let dir = std::env::temp_dir().join(format!(
            "wf-store-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub/index.redb");
        let s = Store::open(&path).unwrap();
        (dir, s)
    }

    #[test]
    fn ids_are_stable_and_reindexing_keeps_them() {
        let (dir, s) = tmp();
        let a = s
            .apply(&[
                Change::Upsert(rec("cam", 0, 1_000_000)),
                Change::Upsert(rec("cam", 60_000, 1_000_000)),
            ])
            .unwrap();
        assert_eq!((a[0].id, a[1].id), (1, 2));
        let mut again = rec("cam", 0, 2_000_000);
        again.truncated = true;
        let b = s.apply(&[Change::Upsert(again)]).unwrap();
        assert_eq!(b[0].id, 1);
        assert_eq!(s.get(1).unwrap().duration_us, 2_000_000);
        assert!(s.get(1).unwrap().truncated);
        s.apply(&[Change::Remove {
            stream_id: "cam".into(),
            start_ms: 0,
        }])
        .unwrap();
        assert_eq!(s.get(1).unwrap_err().kind, Kind::NotFound);
        let path = s.path().to_owned();
        drop(s);
        let s = Store::open(&path).unwrap();
        let c = s.apply(&[Change::Upsert(rec("cam", 0, 1))]).unwrap();
        assert_eq!(c[0].id, 3, "ids are never reused, even after a restart");
        assert_eq!(s.count().unwrap(), 2);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn overlap_queries() {
        let (dir, s) = tmp();
        let ch: Vec<_> = (0..4)
            .map(|i| Change::Upsert(rec("cam", i * 60_000, 60_000_000)))
            .collect();
        s.apply(&ch).unwrap();
        s.apply(&[Change::Upsert(rec("other", 30_000, 60_000_000))])
            .unwrap();
        let starts = |v: Vec<Recording>| v.iter().map(|r| r.start_ms).collect::<Vec<_>>();
        assert_eq!(
            starts(s.overlapping("cam", None, None).unwrap()),
            [0, 60_000, 120_000, 180_000]
        );
        assert_eq!(
            starts(
                s.overlapping("cam", Some(90_000_000), Some(130_000_000))
                    .unwrap()
            ),
            [60_000, 120_000]
        );
        assert_eq!(
            starts(
                s.overlapping("cam", Some(60_000_000), Some(60_000_000))
                    .unwrap()
            ),
            [0, 60_000]
        );
        assert_eq!(
            starts(s.overlapping("cam", Some(300_000_000), None).unwrap()),
            Vec::<i64>::new()
        );
        assert_eq!(
            starts(s.overlapping("nope", None, None).unwrap()),
            Vec::<i64>::new()
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn another_schema_version_is_moved_aside_and_rebuilt() {
        let (dir, s) = tmp();
        s.apply(&[Change::Upsert(rec("cam", 0, 1))]).unwrap();
        let tx = s.db.begin_write().unwrap();
        tx.open_table(META)
            .unwrap()
            .insert(KEY_SCHEMA, SCHEMA_VERSION + 1)
            .unwrap();
        tx.commit().unwrap();
        let path = s.path().to_owned();
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(
            s.count().unwrap(),
            0,
            "a fresh index, for the backfill to fill"
        );
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_index_in_use_is_not_touched() {
        let (dir, s) = tmp();
        let e = Store::open(s.path()).err().expect("a second open fails");
        assert_eq!(e.kind, Kind::Io, "{e}");
        assert_eq!(
            std::fs::read_dir(s.path().parent().unwrap())
                .unwrap()
                .count(),
            1,
            "nothing moved aside"
        );
        drop(s);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_foreign_or_broken_index_is_moved_aside_and_rebuilt() {
        let (dir, s) = tmp();
        let path = s.path().to_owned();
        s.apply(&[Change::Upsert(rec("cam", 0, 1))]).unwrap();
        drop(s);
        std::fs::write(&path, b"this is not a redb file at all, it is garbage").unwrap();
        let s = Store::open(&path).unwrap();
        assert_eq!(s.count().unwrap(), 0);
        let aside = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains("broken")
            });
        assert_eq!(aside.count(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
