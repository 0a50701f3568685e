//! What the index keeps beside the recordings so that no periodic task and no request reads
//! every recording: per-stream totals and the UTC hours that hold footage; the queries that use
//! them; retention's range reads; the migration that derives them from an index of version 1.
//!
//! Invariants:
//! - `totals` and `hours` change in the same write transaction as `recordings`, through
//!   [`Derived::add`] and [`Derived::remove`] only, so they always equal what a full scan of the
//!   recordings gives.
//! - Every query here reads rows in proportion to what it returns (plus the locked recordings
//!   that retention steps over), never the whole table.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use redb::{ReadableDatabase, ReadableTable, Table, WriteTransaction};

use super::Store;
use super::schema::*;
use crate::error::{Error, Result};

const DAY_MS: i64 = 86_400_000;

type Counts = [u32; 24];

fn decode_counts(b: &[u8]) -> Counts {
    let mut c = [0u32; 24];
    for (i, v) in b.chunks_exact(4).take(24).enumerate() {
        c[i] = u32::from_le_bytes([v[0], v[1], v[2], v[3]]);
    }
    c
}

fn encode_counts(c: &Counts) -> Vec<u8> {
    c.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The derived tables of one write transaction.
pub(super) struct Derived<'t> {
    totals: Table<'t, &'static str, (u64, u64)>,
    hours: Table<'t, (&'static str, i64), &'static [u8]>,
}

impl<'t> Derived<'t> {
    pub(super) fn open(tx: &'t WriteTransaction) -> Result<Derived<'t>> {
        Ok(Derived {
            totals: tx.open_table(TOTALS)?,
            hours: tx.open_table(HOURS)?,
        })
    }

    pub(super) fn add(&mut self, r: &Recording) -> Result<()> {
        self.change(r, true)
    }

    pub(super) fn remove(&mut self, r: &Recording) -> Result<()> {
        self.change(r, false)
    }

    fn change(&mut self, r: &Recording, add: bool) -> Result<()> {
        let stream = r.stream_id.as_str();
        let (n, bytes) = self.totals.get(stream)?.map_or((0, 0), |v| v.value());
        let (n, bytes) = if add {
            (n + 1, bytes.saturating_add(r.file_size_bytes))
        } else {
            (n.saturating_sub(1), bytes.saturating_sub(r.file_size_bytes))
        };
        if n == 0 {
            self.totals.remove(stream)?;
        } else {
            self.totals.insert(stream, (n, bytes))?;
        }
        let hours = r.hours();
        let (mut h, last) = (*hours.start(), *hours.end());
        while h <= last {
            let day = h.div_euclid(24);
            let mut c = self
                .hours
                .get((stream, day))?
                .map_or([0; 24], |v| decode_counts(v.value()));
            while h <= last && h.div_euclid(24) == day {
                let slot = &mut c[h.rem_euclid(24) as usize];
                *slot = if add {
                    slot.saturating_add(1)
                } else {
                    slot.saturating_sub(1)
                };
                h += 1;
            }
            if c.iter().all(|v| *v == 0) {
                self.hours.remove((stream, day))?;
            } else {
                self.hours
                    .insert((stream, day), encode_counts(&c).as_slice())?;
            }
        }
        Ok(())
    }
}

/// Version 1 → 2: derives `totals` and `hours` from the recordings, in the caller's transaction,
/// through the same [`Derived::add`] as every later change. Returns how many recordings it read.
pub(super) fn migrate_1_to_2(tx: &WriteTransaction) -> Result<u64> {
    let recs = tx.open_table(RECORDINGS)?;
    let mut derived = Derived::open(tx)?;
    let mut n = 0;
    for r in recs.iter()? {
        let (k, v) = r?;
        let (stream, start) = k.value();
        derived.add(&Recording::decode(stream, start, v.value())?)?;
        n += 1;
    }
    Ok(n)
}

/// Whether `stream` has footage in `[from_ms, to_ms)`.
fn footage_in(
    recs: &impl ReadableTable<(&'static str, i64), &'static [u8]>,
    stream: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<bool> {
    if recs
        .range((stream, from_ms)..(stream, to_ms))?
        .next()
        .is_some()
    {
        return Ok(true);
    }
    let Some(r) = recs
        .range((stream, i64::MIN)..(stream, from_ms))?
        .next_back()
    else {
        return Ok(false);
    };
    let (k, v) = r?;
    let rec = Recording::decode(stream, k.value().1, v.value())?;
    Ok(rec.end_us() > from_ms.saturating_mul(1000))
}

impl Store {
    /// Per stream: how many recordings, and their bytes.
    pub fn stream_totals(&self) -> Result<BTreeMap<String, (u64, u64)>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(TOTALS)?;
        let mut out = BTreeMap::new();
        for r in t.iter()? {
            let (k, v) = r?;
            out.insert(k.value().to_owned(), v.value());
        }
        Ok(out)
    }

    /// The streams the index holds recordings of, configured or not.
    pub fn streams_held(&self) -> Result<Vec<String>> {
        Ok(self.stream_totals()?.into_keys().collect())
    }

    /// The calendar days in `tz` on which `stream_id` has footage, ascending. Reads one row per
    /// UTC day held, and the recordings only around an hour that crosses local midnight (zones
    /// whose offset is not whole hours).
    pub fn dates(&self, stream_id: &str, tz: &TimeZone) -> Result<Vec<Date>> {
        let tx = self.db.begin_read()?;
        let hours = tx.open_table(HOURS)?;
        let recs = tx.open_table(RECORDINGS)?;
        let offset_ms = |ms: i64| -> i64 {
            Timestamp::from_millisecond(ms)
                .map_or(0, |t| i64::from(tz.to_offset(t).seconds()) * 1000)
        };
        let mut days: BTreeSet<i64> = BTreeSet::new();
        for row in hours.range((stream_id, i64::MIN)..=(stream_id, i64::MAX))? {
            let (k, v) = row?;
            let day = k.value().1;
            let c = decode_counts(v.value());
            let day_ms = day.saturating_mul(DAY_MS);
            // One offset for the whole UTC day unless a transition falls inside it.
            let day_off = offset_ms(day_ms);
            let same = day_off == offset_ms(day_ms.saturating_add(DAY_MS - 1));
            for (hour, n) in c.iter().enumerate() {
                if *n == 0 {
                    continue;
                }
                let from = day_ms.saturating_add(hour as i64 * HOUR_MS);
                let to = from.saturating_add(HOUR_MS);
                let (off_a, off_b) = if same {
                    (day_off, day_off)
                } else {
                    (offset_ms(from), offset_ms(to - 1))
                };
                let d1 = (from + off_a).div_euclid(DAY_MS);
                let d2 = (to - 1 + off_b).div_euclid(DAY_MS);
                if d1 == d2 {
                    // Hours come in order: most are on the day just added.
                    if days.last() != Some(&d1) {
                        days.insert(d1);
                    }
                    continue;
                }
                // The hour crosses local midnight: look at the recordings on each side of it.
                let midnight = d2 * DAY_MS - off_b;
                if !days.contains(&d1) && footage_in(&recs, stream_id, from, midnight)? {
                    days.insert(d1);
                }
                if !days.contains(&d2) && footage_in(&recs, stream_id, midnight, to)? {
                    days.insert(d2);
                }
            }
        }
        days.into_iter()
            .map(|d| {
                Timestamp::from_millisecond(d.saturating_mul(DAY_MS))
                    .map(|t| TimeZone::UTC.to_datetime(t).date())
                    .map_err(|e| Error::internal(format!("day {d}: {e}")))
            })
            .collect()
    }

    /// Retention by age: up to `limit` recordings of `stream_id` that start at or after
    /// `from_ms` and end before `cutoff_ms`, oldest first, never a locked one nor the stream's
    /// newest. The second value is where to go on from when `limit` was reached.
    pub fn aged(
        &self,
        stream_id: &str,
        from_ms: i64,
        cutoff_ms: i64,
        limit: usize,
    ) -> Result<(Vec<Recording>, Option<i64>)> {
        let tx = self.db.begin_read()?;
        let recs = tx.open_table(RECORDINGS)?;
        let newest = newest_start(&recs, stream_id)?;
        let mut out = Vec::new();
        for r in recs.range((stream_id, from_ms)..(stream_id, cutoff_ms))? {
            let (k, v) = r?;
            let start = k.value().1;
            if out.len() == limit {
                return Ok((out, Some(start)));
            }
            if Some(start) == newest || decode_stat(v.value()).is_some_and(|s| s.2) {
                continue;
            }
            let rec = Recording::decode(stream_id, start, v.value())?;
            if rec.end_us().div_euclid(1000) < cutoff_ms {
                out.push(rec);
            }
        }
        Ok((out, None))
    }

    /// Disk pressure: the `limit` oldest recordings across all streams, oldest first, never a
    /// locked one nor a stream's newest. Reads at most `limit` unlocked recordings per stream.
    pub fn oldest_deletable(&self, limit: usize) -> Result<Vec<Recording>> {
        let streams = self.streams_held()?;
        let tx = self.db.begin_read()?;
        let recs = tx.open_table(RECORDINGS)?;
        let mut out = Vec::new();
        for s in &streams {
            let newest = newest_start(&recs, s)?;
            let mut taken = 0;
            for r in recs.range((s.as_str(), i64::MIN)..=(s.as_str(), i64::MAX))? {
                let (k, v) = r?;
                let start = k.value().1;
                if taken == limit || Some(start) == newest {
                    break;
                }
                if decode_stat(v.value()).is_some_and(|s| s.2) {
                    continue;
                }
                out.push(Recording::decode(s, start, v.value())?);
                taken += 1;
            }
        }
        out.sort_by_key(|r| (r.start_ms, r.id));
        out.truncate(limit);
        Ok(out)
    }

    /// The backfill's merge of one stream: `files` are `(start_ms, (size, mtime_ms, locked))`
    /// sorted by start. Returns the positions in `files` of those the index lacks or holds with
    /// another size, mtime or lock, and the starts of the records with no file.
    pub fn diff_stream(
        &self,
        stream_id: &str,
        files: &[(i64, (u64, i64, bool))],
    ) -> Result<(Vec<usize>, Vec<i64>)> {
        let tx = self.db.begin_read()?;
        let recs = tx.open_table(RECORDINGS)?;
        let (mut changed, mut gone) = (Vec::new(), Vec::new());
        let mut next = 0;
        for r in recs.range((stream_id, i64::MIN)..=(stream_id, i64::MAX))? {
            let (k, v) = r?;
            let start = k.value().1;
            while next < files.len() && files[next].0 < start {
                changed.push(next);
                next += 1;
            }
            if next < files.len() && files[next].0 == start {
                if decode_stat(v.value()) != Some(files[next].1) {
                    changed.push(next);
                }
                next += 1;
            } else {
                gone.push(start);
            }
        }
        changed.extend(next..files.len());
        Ok((changed, gone))
    }
}

fn newest_start(
    recs: &impl ReadableTable<(&'static str, i64), &'static [u8]>,
    stream_id: &str,
) -> Result<Option<i64>> {
    let last = recs
        .range((stream_id, i64::MIN)..=(stream_id, i64::MAX))?
        .next_back()
        .transpose()?;
    Ok(last.map(|(k, _)| k.value().1))
}

#[cfg(test)]
#[path = "derived_tests.rs"]
mod tests;
