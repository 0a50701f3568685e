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
    /// About how much memory this holds, for caches bounded in bytes.
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.tracks.len() * std::mem::size_of::<FragTrack>()
            + self.frags.len() * std::mem::size_of::<Fragment>()
            + self.times.len() * 16
            + self.last_durs.len() * 4
            + self.codec_key.len()
    }

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

/// The most references one `sidx` holds (its count is 16 bits).
const MAX_REFS: usize = u16::MAX as usize;
/// The largest size one reference can give (31 bits).
const MAX_REF_SIZE: u64 = 0x7FFF_FFFF;

/// One `sidx` box per track indexing every fragment, to go between the header and the first
/// fragment. Players read the whole duration from it at once and seek with it; ffmpeg's
/// `global_sidx` would give the same but rewrites the file at its end, which a recorder that
/// can be killed at any moment must not do. `frags` gives each fragment's size and its
/// (decode time, duration) per track; `starts` each track's earliest presentation time.
///
/// Past 65,535 fragments (18 hours of one-second fragments) a reference covers several
/// consecutive fragments, as many as it takes to stay within the box's 16-bit count.
pub fn sidx_boxes<'a>(
    tracks: &[FragTrack],
    starts: &[u64],
    frags: impl Iterator<Item = (u64, &'a [(u64, u64)])> + Clone,
) -> Vec<u8> {
    let sizes: Vec<u64> = frags.clone().map(|(size, _)| size).collect();
    let ends = reference_ends(&sizes);
    let refs = |t: usize| {
        let mut out = Vec::with_capacity(ends.len());
        let (mut size, mut ticks, mut next) = (0u64, 0u64, 0usize);
        for (i, (s, times)) in frags.clone().enumerate() {
            size += s;
            ticks += times.get(t).map_or(0, |x| x.1);
            if ends.get(next) == Some(&(i + 1)) {
                out.push((size, ticks));
                (size, ticks, next) = (0, 0, next + 1);
            }
        }
        out
    };
    let refs: Vec<Vec<(u64, u64)>> = (0..tracks.len()).map(refs).collect();
    let lens: Vec<u64> = (0..tracks.len())
        .map(|t| sidx(&tracks[t], starts[t], 0, &refs[t]).len() as u64)
        .collect();
    let mut out = Vec::new();
    for t in 0..tracks.len() {
        // Each sidx points past the ones after it, at the first fragment.
        let after: u64 = lens[t + 1..].iter().sum();
        out.extend_from_slice(&sidx(&tracks[t], starts[t], after, &refs[t]));
    }
    out
}

/// Where each reference ends (an index into `sizes`): one fragment each while they fit, else
/// runs of consecutive fragments, each within a reference's 31-bit size.
fn reference_ends(sizes: &[u64]) -> Vec<usize> {
    let mut per = sizes.len().div_ceil(MAX_REFS).max(1);
    loop {
        let mut ends = Vec::with_capacity(sizes.len().min(MAX_REFS));
        let (mut count, mut bytes) = (0usize, 0u64);
        for (i, &s) in sizes.iter().enumerate() {
            if count == per || (count > 0 && bytes + s > MAX_REF_SIZE) {
                ends.push(i);
                (count, bytes) = (0, 0);
            }
            count += 1;
            bytes += s;
        }
        if count > 0 {
            ends.push(sizes.len());
        }
        if ends.len() <= MAX_REFS || per >= sizes.len() {
            return ends;
        }
        per *= 2;
    }
}

/// One `sidx` box (ISO/IEC 14496-12 8.16.3): version 0 while its times fit 32 bits, each
/// reference a media subsegment that starts with a sync sample.
fn sidx(track: &FragTrack, start: u64, first_offset: u64, refs: &[(u64, u64)]) -> Vec<u8> {
    let v1 = start > u64::from(u32::MAX) || first_offset > u64::from(u32::MAX);
    let len = 12 + 8 + if v1 { 16 } else { 8 } + 4 + 12 * refs.len();
    let mut b = Vec::with_capacity(len);
    b.extend_from_slice(&(len as u32).to_be_bytes());
    b.extend_from_slice(b"sidx");
    b.extend_from_slice(&[u8::from(v1), 0, 0, 0]);
    b.extend_from_slice(&track.id.to_be_bytes());
    b.extend_from_slice(&track.timescale.to_be_bytes());
    if v1 {
        b.extend_from_slice(&start.to_be_bytes());
        b.extend_from_slice(&first_offset.to_be_bytes());
    } else {
        b.extend_from_slice(&(start as u32).to_be_bytes());
        b.extend_from_slice(&(first_offset as u32).to_be_bytes());
    }
    b.extend_from_slice(&0u16.to_be_bytes());
    b.extend_from_slice(&(refs.len().min(MAX_REFS) as u16).to_be_bytes());
    for &(size, ticks) in refs.iter().take(MAX_REFS) {
        b.extend_from_slice(&(size.min(MAX_REF_SIZE) as u32).to_be_bytes());
        b.extend_from_slice(&u32::try_from(ticks).unwrap_or(u32::MAX).to_be_bytes());
        // starts_with_SAP, SAP type 1.
        b.extend_from_slice(&0x9000_0000u32.to_be_bytes());
    }
    b
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

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::{Decode, Encode, SegmentReference, Sidx};

    fn track(id: u32) -> FragTrack {
        FragTrack {
            id,
            timescale: 90_000,
            video: id == 1,
            start_pts: 0,
        }
    }

    #[test]
    fn a_sidx_is_what_mp4_atom_writes() {
        let tracks = [track(1), track(2)];
        let times: Vec<[(u64, u64); 2]> = (0..3u64)
            .map(|i| [(i * 90_000, 90_000), (i * 48_000, 48_000 + i)])
            .collect();
        let frags = times
            .iter()
            .enumerate()
            .map(|(i, t)| (1000 + i as u64, &t[..]));
        let ours = sidx_boxes(&tracks, &[0, 5], frags);
        let want = |t: usize, first_offset| {
            let mut b = Vec::new();
            Sidx {
                reference_id: tracks[t].id,
                timescale: 90_000,
                earliest_presentation_time: [0, 5][t],
                first_offset,
                references: times
                    .iter()
                    .enumerate()
                    .map(|(i, x)| SegmentReference {
                        reference_type: false,
                        referenced_size: 1000 + i as u32,
                        subsegment_duration: x[t].1 as u32,
                        starts_with_sap: true,
                        sap_type: 1,
                        sap_delta_time: 0,
                    })
                    .collect(),
            }
            .encode(&mut b)
            .unwrap();
            b
        };
        let second = want(1, 0);
        assert_eq!(ours, [want(0, second.len() as u64), second].concat());
    }

    #[test]
    fn past_65535_fragments_a_reference_covers_several() {
        let tracks = [track(1)];
        let n = 200_000u64;
        let times: Vec<[(u64, u64); 1]> = (0..n).map(|i| [(i * 90_000, 90_000)]).collect();
        let frags = times.iter().map(|t| (500_000u64, &t[..]));
        let ours = sidx_boxes(&tracks, &[0], frags);
        let got = Sidx::decode(&mut &ours[..]).unwrap();
        assert!(got.references.len() <= 65_535, "{}", got.references.len());
        let size: u64 = got
            .references
            .iter()
            .map(|r| u64::from(r.referenced_size))
            .sum();
        let ticks: u64 = got
            .references
            .iter()
            .map(|r| u64::from(r.subsegment_duration))
            .sum();
        assert_eq!((size, ticks), (n * 500_000, n * 90_000));
        assert!(got.references.iter().all(|r| r.starts_with_sap));
        // A reference stays within 31 bits of size: 3 GB fragments get one each.
        assert_eq!(reference_ends(&[3 << 30, 3 << 30, 10]), [1, 2, 3]);
        assert_eq!(reference_ends(&[]), Vec::<usize>::new());
    }
}
