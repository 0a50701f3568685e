//! The index's layout in one place: the schema version, every redb table and the encoding of
//! the values stored in them. Bump [`SCHEMA_VERSION`] with any change here, and teach
//! `Store::open` to migrate the version before it in place; an index of an unknown version is
//! moved aside and rebuilt from the files.

use redb::TableDefinition;

use crate::error::{Error, Result};
use crate::time;

/// Bump when the layout of any table or value changes.
/// - 1: recordings, ids, unindexable files.
/// - 2: adds `totals` and `hours`, derived from the recordings (migrated in place from 1).
pub const SCHEMA_VERSION: u64 = 2;

pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// `(stream_id, start_ms)` → encoded [`Recording`] (without its key).
pub(super) const RECORDINGS: TableDefinition<(&str, i64), &[u8]> =
    TableDefinition::new("recordings");
/// id → `(stream_id, start_ms)`.
pub(super) const IDS: TableDefinition<u64, (&str, i64)> = TableDefinition::new("ids");
/// `stream_id/file name` → (size, mtime_ms, why it could not be indexed).
pub(super) const UNINDEXABLE: TableDefinition<&str, (u64, i64, &str)> =
    TableDefinition::new("unindexable");

/// `stream_id` → (recordings, bytes). Changed in the same transaction as every change to
/// [`RECORDINGS`]; a stream without recordings has no row.
pub(super) const TOTALS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("totals");
/// `(stream_id, utc_day)` → 24 little-endian `u32`: for each UTC hour of the day, how many
/// recordings of the stream hold footage in it (see [`Recording::hours`]). Changed in the same
/// transaction as every change to [`RECORDINGS`]; a day with no footage has no row.
pub(super) const HOURS: TableDefinition<(&str, i64), &[u8]> = TableDefinition::new("hours");

pub(super) const KEY_SCHEMA: &str = "schema_version";
pub(super) const KEY_NEXT_ID: &str = "next_id";

pub const HOUR_MS: i64 = 3_600_000;
/// The most hours one recording marks in [`HOURS`]: 31 days. Segments last minutes.
pub const MAX_HOURS: i64 = 24 * 31;

/// One segment file, as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub id: u64,
    pub stream_id: String,
    pub start_ms: i64,
    pub duration_us: u64,
    pub file_size_bytes: u64,
    /// The file's mtime when it was indexed; the backfill re-probes a file whose mtime or size
    /// has changed since.
    pub mtime_ms: i64,
    pub retention_locked: bool,
    pub truncated: bool,
    pub video_codec: Option<String>,
    pub width: u32,
    pub height: u32,
    pub audio_codec: Option<String>,
}

impl Recording {
    pub fn end_us(&self) -> i64 {
        self.start_ms
            .saturating_mul(1000)
            .saturating_add(i64::try_from(self.duration_us).unwrap_or(i64::MAX))
    }

    /// The UTC hours (`ms / HOUR_MS`) in which this recording holds footage, its end exclusive;
    /// a recording of no duration marks its start hour. A crafted file can claim any duration,
    /// so at most [`MAX_HOURS`] hours are marked.
    pub fn hours(&self) -> std::ops::RangeInclusive<i64> {
        let start_us = self.start_ms.saturating_mul(1000);
        let first = self.start_ms.div_euclid(HOUR_MS);
        let last = (self.end_us() - 1).max(start_us).div_euclid(HOUR_MS * 1000);
        first..=last.min(first.saturating_add(MAX_HOURS - 1))
    }

    /// The file's path relative to `recordings_dir`.
    pub fn file_path(&self) -> String {
        format!("{}/{}", self.stream_id, time::segment_name(self.start_ms))
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64);
        b.push(1u8);
        b.extend_from_slice(&self.id.to_le_bytes());
        b.extend_from_slice(&self.duration_us.to_le_bytes());
        b.extend_from_slice(&self.file_size_bytes.to_le_bytes());
        b.extend_from_slice(&self.mtime_ms.to_le_bytes());
        b.push(u8::from(self.retention_locked) | (u8::from(self.truncated) << 1));
        b.extend_from_slice(&self.width.to_le_bytes());
        b.extend_from_slice(&self.height.to_le_bytes());
        for s in [&self.video_codec, &self.audio_codec] {
            let s = s.as_deref().unwrap_or("").as_bytes();
            let s = &s[..s.len().min(255)];
            b.push(s.len() as u8);
            b.extend_from_slice(s);
        }
        b
    }

    pub(super) fn decode(stream_id: &str, start_ms: i64, b: &[u8]) -> Result<Recording> {
        let mut r = Reader(b);
        let bad = || Error::internal(format!("index: bad record for {stream_id}/{start_ms}"));
        if r.take(1).ok_or_else(bad)? != [1] {
            return Err(bad());
        }
        let id = r.u64().ok_or_else(bad)?;
        let duration_us = r.u64().ok_or_else(bad)?;
        let file_size_bytes = r.u64().ok_or_else(bad)?;
        let mtime_ms = r.u64().ok_or_else(bad)? as i64;
        let flags = r.take(1).ok_or_else(bad)?[0];
        let width = r.u32().ok_or_else(bad)?;
        let height = r.u32().ok_or_else(bad)?;
        let video_codec = r.string().ok_or_else(bad)?;
        let audio_codec = r.string().ok_or_else(bad)?;
        Ok(Recording {
            id,
            stream_id: stream_id.to_owned(),
            start_ms,
            duration_us,
            file_size_bytes,
            mtime_ms,
            retention_locked: flags & 1 != 0,
            truncated: flags & 2 != 0,
            video_codec,
            width,
            height,
            audio_codec,
        })
    }
}

/// The size, mtime and lock of an encoded recording, without decoding the rest.
pub(super) fn decode_stat(b: &[u8]) -> Option<(u64, i64, bool)> {
    let mut r = Reader(b);
    if r.take(1)? != [1] {
        return None;
    }
    r.take(16)?;
    let size = r.u64()?;
    let mtime_ms = r.u64()? as i64;
    let flags = r.take(1)?[0];
    Some((size, mtime_ms, flags & 1 != 0))
}

pub(super) struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<Option<String>> {
        let n = self.take(1)?[0] as usize;
        let s = std::str::from_utf8(self.take(n)?).ok()?;
        Some(if s.is_empty() {
            None
        } else {
            Some(s.to_owned())
        })
    }
}

/// A file that could not be indexed, and the size and mtime it had then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unindexable {
    pub file_path: String,
    pub file_size_bytes: u64,
    pub mtime_ms: i64,
    pub why: String,
}

/// One change for [`Store::apply`].
#[derive(Debug, Clone)]
pub enum Change {
    /// Adds or updates a recording; its `id` is ignored: the store hands ids out.
    Upsert(Recording),
    Remove {
        stream_id: String,
        start_ms: i64,
    },
    Unindexable(Unindexable),
    Indexable {
        file_path: String,
    },
}
