//! The fragment index of a fragmented file: where each fragment lies and the decode times of
//! its tracks, read whole or, for a file being written, a batch of new fragments at a time;
//! and the `sidx` boxes that tell players the whole duration at once.

use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;

use super::boxes::{BoxHeader, Children};
use super::leaves;
use super::probe::{Kind, Prober, Track};
use crate::error::{Error, Result};

/// The largest `moof` accepted (it is read in place, never whole): ours are a few KB.
const MAX_MOOF: u64 = 16 << 20;
/// The most (fragment, track) pairs one fragment index may hold: 72 hours of one-second
/// fragments of two tracks, at about 60 bytes each.
pub const MAX_FRAG_ENTRIES: usize = 1 << 19;

/// One track of a fragmented file, as an index of its fragments needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragTrack {
    pub id: u32,
    pub timescale: u32,
    pub video: bool,
    /// The earliest presentation time of its first fragment, in its timescale.
    pub start_pts: i64,
}

/// One complete fragment: `moof` and its sample data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    pub offset: u64,
    pub size: u64,
    pub moof_len: u32,
    /// Its first video sample is a sync sample, so decoding can start here. Always true for a
    /// file without video.
    pub key: bool,
}

/// The layout of a fragmented file: the header boxes, then every complete fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragments {
    /// Bytes before the first fragment (`ftyp`, `moov`).
    pub head_len: u64,
    pub tracks: Vec<FragTrack>,
    pub frags: Vec<Fragment>,
    /// Per fragment, per track (in the order of `tracks`): decode time and duration in that
    /// track's ticks. Flat, so a day of fragments costs two allocations, not thousands.
    times: Vec<(u64, u64)>,
    /// Per fragment, per track: the duration of its last sample.
    last_durs: Vec<u32>,
    /// Identifies the codec configuration (track ids, timescales, sample descriptions): two
    /// files can be played as one only when theirs are equal.
    pub codec_key: Vec<u8>,
}

impl Fragments {
    /// Where the last complete fragment ends.
    pub fn content_end(&self) -> u64 {
        self.frags
            .last()
            .map_or(self.head_len, |f| f.offset + f.size)
    }

    /// The decode time of fragment `f` in track `t`, in that track's ticks.
    pub fn dts(&self, f: usize, t: usize) -> u64 {
        self.times[f * self.tracks.len() + t].0
    }

    /// The duration of fragment `f` in track `t`, in that track's ticks.
    pub fn ticks(&self, f: usize, t: usize) -> u64 {
        self.times[f * self.tracks.len() + t].1
    }

    /// The decode time of the last sample of fragment `f` in track `t`.
    pub fn last_dts(&self, f: usize, t: usize) -> u64 {
        let i = f * self.tracks.len() + t;
        let (dts, ticks) = self.times[i];
        (dts + ticks).saturating_sub(u64::from(self.last_durs[i]))
    }

    /// Fragment `f`'s (decode time, duration) per track.
    pub fn times(&self, f: usize) -> &[(u64, u64)] {
        let n = self.tracks.len();
        &self.times[f * n..(f + 1) * n]
    }

    /// The track whose clock maps the file to wall time: the first video track, else the first.
    pub fn clock_track(&self) -> usize {
        self.tracks.iter().position(|t| t.video).unwrap_or(0)
    }

    /// This file's own `sidx` boxes (see [`sidx_boxes`]).
    pub fn sidx_boxes(&self) -> Vec<u8> {
        let n = self.tracks.len();
        let starts: Vec<u64> = self
            .tracks
            .iter()
            .map(|t| u64::try_from(t.start_pts).unwrap_or(0))
            .collect();
        sidx_boxes(
            &self.tracks,
            &starts,
            self.frags
                .iter()
                .enumerate()
                .map(|(i, f)| (f.size, &self.times[i * n..(i + 1) * n])),
        )
    }
}

/// One `sidx` box per track indexing every fragment, to go between the header and the first
/// fragment. Players read the whole duration from it at once and seek with it; ffmpeg's
/// `global_sidx` would give the same but rewrites the file at its end, which a recorder that
/// can be killed at any moment must not do. `frags` gives each fragment's size and its
/// (decode time, duration) per track; `starts` each track's earliest presentation time.
pub fn sidx_boxes<'a>(
    tracks: &[FragTrack],
    starts: &[u64],
    frags: impl Iterator<Item = (u64, &'a [(u64, u64)])> + Clone,
) -> Vec<u8> {
    use mp4_atom::{Encode, SegmentReference, Sidx};
    let build = |t: usize, first_offset: u64| Sidx {
        reference_id: tracks[t].id,
        timescale: tracks[t].timescale,
        earliest_presentation_time: starts[t],
        first_offset,
        references: frags
            .clone()
            .map(|(size, times)| SegmentReference {
                reference_type: false,
                referenced_size: u32::try_from(size).unwrap_or(u32::MAX),
                subsegment_duration: u32::try_from(times[t].1).unwrap_or(u32::MAX),
                starts_with_sap: true,
                sap_type: 1,
                sap_delta_time: 0,
            })
            .collect(),
    };
    let encode = |b: &Sidx| {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail.
        let _ = b.encode(&mut out);
        out
    };
    let sizes: Vec<u64> = (0..tracks.len())
        .map(|t| encode(&build(t, 0)).len() as u64)
        .collect();
    let mut out = Vec::new();
    for t in 0..tracks.len() {
        // Each sidx points past the ones after it, at the first fragment.
        let after: u64 = sizes[t + 1..].iter().sum();
        out.extend_from_slice(&encode(&build(t, after)));
    }
    out
}

/// The fragments of the file at `path`, or `None` if it is not a fragmented MP4.
pub fn fragments(path: &Path) -> Result<Option<Fragments>> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    fragments_of(&mut f, len)
}

/// The fragments of the first `len` bytes of `r`, or `None` if it is not a fragmented MP4.
pub fn fragments_of<R: Read + Seek>(r: &mut R, len: u64) -> Result<Option<Fragments>> {
    if len == 0 {
        return Err(Error::corrupt("empty file"));
    }
    let mut tail = Tail::default();
    let Some(f) = tail.next(r, len)? else {
        return Ok(None);
    };
    Ok((!f.frags.is_empty()).then_some(f))
}

/// Reads the fragments of a file that grows, each only once: every call returns the complete
/// fragments added since the last one.
#[derive(Default)]
pub struct Tail {
    tracks: Vec<Track>,
    codec_key: Vec<u8>,
    head_len: Option<u64>,
    /// Where the next fragment is looked for.
    next: u64,
}

impl Tail {
    /// The fragments that are complete in the first `len` bytes of `r` and were not returned
    /// before (with the file's header length, tracks and codec key), or `None` when the file
    /// is not a fragmented MP4 (or, while it is being written, not yet one).
    pub fn next<R: Read + Seek>(&mut self, r: &mut R, len: u64) -> Result<Option<Fragments>> {
        if len <= self.next {
            return Ok(self
                .head_len
                .map(|_| self.batch(Collected::default(), self.next)));
        }
        let mut p = Prober::new(r, len, true);
        if self.head_len.is_some() {
            p.tracks = std::mem::take(&mut self.tracks);
            p.moov = true;
            p.fragmented = true;
        }
        let walked = p.walk(self.next, None);
        let collected = p.collect.take().unwrap_or_default();
        self.tracks = std::mem::take(&mut p.tracks);
        if self.head_len.is_none() {
            self.codec_key = std::mem::take(&mut p.codec_key);
        }
        let end = walked?;
        if self.head_len.is_none() {
            match collected.frags.first() {
                Some(f) => self.head_len = Some(f.offset),
                None => return Ok(None),
            }
        }
        self.next = end;
        Ok(Some(self.batch(collected, end)))
    }

    fn batch(&self, collected: Collected, end: u64) -> Fragments {
        let Collected {
            mut frags,
            data_ends,
            times,
            last_durs,
        } = collected;
        for i in 0..frags.len() {
            // A fragment runs to the next one; the last to where the walk stopped, or to the
            // end of its data if the walk stopped inside its mdat's header.
            let next = frags.get(i + 1).map_or(end.max(data_ends[i]), |f| f.offset);
            frags[i].size = next - frags[i].offset;
        }
        let tracks = self
            .tracks
            .iter()
            .map(|t| FragTrack {
                id: t.id,
                timescale: t.timescale,
                video: t.kind == Kind::Video,
                start_pts: t.start_pts,
            })
            .collect();
        Fragments {
            head_len: self.head_len.unwrap_or(0),
            tracks,
            frags,
            times,
            last_durs,
            codec_key: self.codec_key.clone(),
        }
    }
}

#[derive(Default)]
pub(super) struct Collected {
    /// Sizes are filled in at the end.
    pub(super) frags: Vec<Fragment>,
    pub(super) data_ends: Vec<u64>,
    pub(super) times: Vec<(u64, u64)>,
    pub(super) last_durs: Vec<u32>,
}

/// What one `traf` adds to its track.
struct TrafSum {
    track: usize,
    first_dts: u64,
    ticks: u64,
    min_pts: i64,
    sync: bool,
    last_dur: u32,
    data_end: u64,
}

impl<R: Read + Seek> Prober<'_, R> {
    /// Accounts one fragment. Returns false when it is incomplete (its box or its sample data
    /// runs past the end of the file), in which case nothing of it is counted.
    pub(super) fn moof(&mut self, h: &BoxHeader) -> Result<bool> {
        let Some(end) = h.end else {
            return Ok(false);
        };
        if end - h.body > MAX_MOOF {
            return Err(Error::corrupt(format!(
                "moof at byte {} is larger than {MAX_MOOF} bytes",
                h.start
            )));
        }
        let at = |e: Error| e.context(format!("moof at byte {}", h.start));
        let mut updates = Vec::with_capacity(self.tracks.len());
        let mut moof_data_end = end;
        let mut kids = Children::of(h, end);
        while let Some((c, c_end)) = kids.next(&mut self.src).map_err(at)? {
            if &c.kind != b"traf" {
                continue;
            }
            let Some(u) = self.traf(h, &c, c_end).map_err(at)? else {
                return Ok(false);
            };
            moof_data_end = moof_data_end.max(u.data_end);
            updates.push(u);
        }
        if let Some(c) = &mut self.collect {
            if (c.frags.len() + 1) * self.tracks.len().max(1) > MAX_FRAG_ENTRIES {
                return Err(Error::corrupt(format!(
                    "more fragments than the {MAX_FRAG_ENTRIES} track-fragments one file may hold"
                )));
            }
            let has_video = self.tracks.iter().any(|t| t.kind == Kind::Video);
            let key = !has_video
                || updates
                    .iter()
                    .any(|u| self.tracks[u.track].kind == Kind::Video && u.sync);
            let base = c.times.len();
            c.times.extend(self.tracks.iter().map(|t| (t.end_ticks, 0)));
            c.last_durs.extend(self.tracks.iter().map(|_| 0));
            for u in &updates {
                let slot = &mut c.times[base + u.track];
                if slot.1 == 0 {
                    slot.0 = u.first_dts;
                }
                slot.1 = slot.1.saturating_add(u.ticks);
                if u.ticks > 0 {
                    c.last_durs[base + u.track] = u.last_dur;
                }
            }
            c.frags.push(Fragment {
                offset: h.start,
                size: 0,
                moof_len: u32::try_from(end - h.start).unwrap_or(u32::MAX),
                key,
            });
            c.data_ends.push(moof_data_end);
        }
        for u in updates {
            let t = &mut self.tracks[u.track];
            if t.first_ticks.is_none() {
                t.first_ticks = Some(u.first_dts);
                t.start_pts = if u.min_pts == i64::MAX {
                    i64::try_from(u.first_dts).unwrap_or(0)
                } else {
                    u.min_pts
                };
            }
            t.end_ticks = t.end_ticks.max(u.first_dts.saturating_add(u.ticks));
        }
        Ok(true)
    }

    /// Sums one `traf`: its track, decode time, duration and where its sample data ends.
    /// `None` when that data runs past the end of the file.
    fn traf(&mut self, moof: &BoxHeader, h: &BoxHeader, end: u64) -> Result<Option<TrafSum>> {
        let mut tfhd = None;
        let mut tfdt = None;
        let mut kids = Children::of(h, end);
        while let Some((c, c_end)) = kids.next(&mut self.src)? {
            match &c.kind {
                b"tfhd" => tfhd = Some(leaves::tfhd(&mut self.src, &c, c_end)?),
                b"tfdt" => tfdt = Some(leaves::tfdt(&mut self.src, &c, c_end)?),
                _ => {}
            }
        }
        let tfhd = tfhd.ok_or_else(|| Error::corrupt("a traf has no tfhd box"))?;
        let Some(ti) = self.tracks.iter().position(|t| t.id == tfhd.track_id) else {
            return Err(Error::corrupt(format!(
                "it names unknown track {}",
                tfhd.track_id
            )));
        };
        let track = &self.tracks[ti];
        let defaults = leaves::Defaults {
            duration: tfhd.default_duration.unwrap_or(track.default_dur),
            size: tfhd.default_size.unwrap_or(track.default_size),
            flags: tfhd.default_flags.unwrap_or(track.default_flags),
        };
        let first_dts = tfdt.unwrap_or(track.end_ticks);
        let base = tfhd.base_data_offset.unwrap_or(moof.start);
        let mut sum = TrafSum {
            track: ti,
            first_dts,
            ticks: 0,
            min_pts: i64::MAX,
            sync: false,
            last_dur: 0,
            data_end: 0,
        };
        let mut first_flags = None;
        // A run without a data offset follows the one before it.
        let mut next_data = base;
        let mut kids = Children::of(h, end);
        while let Some((c, c_end)) = kids.next(&mut self.src)? {
            if &c.kind != b"trun" {
                continue;
            }
            let run = leaves::trun(&mut self.src, &c, c_end, defaults)?;
            if run.samples > 0 {
                first_flags = first_flags.or(run.first_flags);
                sum.last_dur = run.last_duration;
                let run_dts =
                    i64::try_from(first_dts.saturating_add(sum.ticks)).unwrap_or(i64::MAX);
                sum.min_pts = sum.min_pts.min(run_dts.saturating_add(run.min_cts));
            }
            sum.ticks = sum.ticks.saturating_add(run.ticks);
            let start = match run.data_offset {
                Some(o) => base.checked_add_signed(i64::from(o)).unwrap_or(u64::MAX),
                None => next_data,
            };
            next_data = start.saturating_add(run.bytes);
            sum.data_end = sum.data_end.max(next_data);
        }
        if sum.data_end > self.len() {
            return Ok(None);
        }
        // The sample flags' sample_is_non_sync_sample bit.
        sum.sync = first_flags.is_some_and(|f| f & 0x0001_0000 == 0);
        Ok(Some(sum))
    }
}
