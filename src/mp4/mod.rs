//! The native MP4 probe: duration, codecs and frame size of a segment, without ffprobe; the
//! fragment index of a file (read incrementally while it grows); `sidx` building and in-place
//! `moof` rewriting.
//!
//! Invariants:
//! - Every byte of a file is untrusted. The file is never read whole: the probe seeks from
//!   box to box and reads only the few leaves it needs, through the bounded reader in
//!   [`boxes`], so no file, however crafted, makes a probe allocate more than
//!   [`boxes::PROBE_BUDGET`] or loop longer than its own bytes allow.
//! - A fragment counts only when its `moof` and all the sample data it points at lie inside the
//!   file; anything after the last complete fragment makes the result `truncated`.
//! - A finished fragmented file with an `mfra` index is probed from its first and last fragments
//!   only, which gives the same answer as walking every fragment.
//! - A fragment index holds at most [`MAX_FRAG_ENTRIES`] track-fragments.

mod boxes;

use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;

use crate::error::{Error, Result};
pub use boxes::PROBE_BUDGET;
use boxes::{BoxHeader, Children, MAX_STSD, MAX_TRACKS, Source, be32};

/// The largest `moof` accepted (it is read in place, never whole): ours are a few KB.
const MAX_MOOF: u64 = 16 << 20;
/// The most (fragment, track) pairs one fragment index may hold: 72 hours of one-second
/// fragments of two tracks, at about 60 bytes each.
pub const MAX_FRAG_ENTRIES: usize = 1 << 19;

/// The boxes an MP4 file may start with.
const FIRST_BOXES: [&[u8; 4]; 7] = [
    b"ftyp", b"styp", b"moov", b"free", b"skip", b"wide", b"pdin",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The longest track's duration, as ffprobe's `format=duration` reports it.
    pub duration_us: u64,
    pub fragmented: bool,
    /// The file ends before its last box does (power loss, SIGKILL, a segment still being written).
    pub truncated: bool,
    pub video_codec: Option<String>,
    pub width: u32,
    pub height: u32,
    pub audio_codec: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Video,
    Audio,
    Other,
}

#[derive(Debug)]
struct Track {
    id: u32,
    timescale: u32,
    kind: Kind,
    codec: Option<String>,
    width: u32,
    height: u32,
    /// `trex` default sample duration, size and flags.
    default_dur: u32,
    default_size: u32,
    default_flags: u32,
    /// Plain MP4: `mdhd`'s duration.
    plain_ticks: u64,
    /// Fragmented: decode time of the first fragment and end of the last complete one.
    first_ticks: Option<u64>,
    end_ticks: u64,
    /// Fragmented: the earliest presentation time of the first fragment (B-frames delay it).
    start_pts: i64,
}

impl Track {
    fn duration_ticks(&self, fragmented: bool) -> u64 {
        match (fragmented, self.first_ticks) {
            (true, Some(first)) => self.end_ticks.saturating_sub(first),
            (true, None) => 0,
            (false, _) => self.plain_ticks,
        }
    }
}

/// Probes the file at `path`.
pub fn probe_file(path: &Path) -> Result<Probe> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    probe(&mut f, len)
}

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

/// Rewrites a `moof` in place for a new place in a new file: its sequence number, each
/// track's decode time (`tfdt`) shifted by `tfdt_shift[(track id, ticks)]`, and any absolute
/// `base_data_offset` shifted by `data_shift` bytes. Every field keeps its width, so sizes and
/// offsets stay valid. A shifted time that does not fit its field is an error.
pub fn rewrite_moof(
    moof: &mut [u8],
    seq: u32,
    data_shift: i64,
    tfdt_shift: &[(u32, i64)],
) -> Result<()> {
    let bad = |what: &str| Error::corrupt(format!("moof: {what}"));
    let children = |b: &[u8], from: usize, to: usize| -> Result<Vec<([u8; 4], usize, usize)>> {
        let mut out = Vec::new();
        let mut at = from;
        while let Some((kind, body, end)) = boxes::span(b, at, to).map_err(|e| e.context("moof"))? {
            if out.len() == boxes::MAX_CHILDREN {
                return Err(bad("too many boxes"));
            }
            out.push((kind, body, end));
            at = end;
        }
        Ok(out)
    };
    if moof.len() < 8 || &moof[4..8] != b"moof" {
        return Err(bad("not a moof box"));
    }
    for (kind, body, end) in children(moof, 8, moof.len())? {
        match &kind {
            b"mfhd" if end - body >= 8 => {
                moof[body + 4..body + 8].copy_from_slice(&seq.to_be_bytes());
            }
            b"traf" => {
                let kids = children(moof, body, end)?;
                let mut track = None;
                for (kind, body, end) in &kids {
                    if kind == b"tfhd" && end - body >= 8 {
                        let b = &moof[*body..];
                        track = Some(u32::from_be_bytes([b[4], b[5], b[6], b[7]]));
                        let flags = u32::from_be_bytes([0, b[1], b[2], b[3]]);
                        if flags & 1 != 0 && end - body >= 16 {
                            let at = body + 8;
                            let old =
                                u64::from_be_bytes(moof[at..at + 8].try_into().unwrap_or_default());
                            let new = old
                                .checked_add_signed(data_shift)
                                .ok_or_else(|| bad("base_data_offset out of range"))?;
                            moof[at..at + 8].copy_from_slice(&new.to_be_bytes());
                        }
                    }
                }
                let shift = track
                    .and_then(|id| tfdt_shift.iter().find(|(t, _)| *t == id))
                    .map_or(0, |(_, s)| *s);
                for (kind, body, end) in kids {
                    if &kind != b"tfdt" {
                        continue;
                    }
                    let v1 = moof[body] == 1;
                    let at = body + 4;
                    if v1 && end - body >= 12 {
                        let old =
                            u64::from_be_bytes(moof[at..at + 8].try_into().unwrap_or_default());
                        let new = old
                            .checked_add_signed(shift)
                            .ok_or_else(|| bad("decode time out of range"))?;
                        moof[at..at + 8].copy_from_slice(&new.to_be_bytes());
                    } else if !v1 && end - body >= 8 {
                        let old =
                            u32::from_be_bytes(moof[at..at + 4].try_into().unwrap_or_default());
                        let new = u64::from(old)
                            .checked_add_signed(shift)
                            .and_then(|v| u32::try_from(v).ok())
                            .ok_or_else(|| bad("decode time does not fit a version 0 tfdt"))?;
                        moof[at..at + 4].copy_from_slice(&new.to_be_bytes());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Probes `len` bytes of `r`, from offset 0.
pub fn probe<R: Read + Seek>(r: &mut R, len: u64) -> Result<Probe> {
    if len == 0 {
        return Err(Error::corrupt("empty file"));
    }
    let mut p = Prober::new(r, len, false);
    if !p.probe_with_mfra()? {
        p.tracks.clear();
        p.fragmented = false;
        p.truncated = false;
        p.moov = false;
        p.walk(0, None)?;
    }
    p.finish()
}

struct Prober<'r, R> {
    src: Source<'r, R>,
    tracks: Vec<Track>,
    fragmented: bool,
    truncated: bool,
    moov: bool,
    /// `mvhd`'s duration, which is what players and ffprobe take for a plain MP4.
    movie_us: Option<u64>,
    /// When set, every complete fragment is collected here.
    collect: Option<Collected>,
    /// See [`Fragments::codec_key`].
    codec_key: Vec<u8>,
}

#[derive(Default)]
struct Collected {
    /// Sizes are filled in at the end.
    frags: Vec<Fragment>,
    data_ends: Vec<u64>,
    times: Vec<(u64, u64)>,
    last_durs: Vec<u32>,
}

/// What a `trak` says, as it is read.
#[derive(Default)]
struct TrakBoxes {
    id: Option<u32>,
    mdhd: Option<(u32, u64)>,
    handler: [u8; 4],
    stsd: Option<Vec<u8>>,
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

impl<'r, R: Read + Seek> Prober<'r, R> {
    fn new(r: &'r mut R, len: u64, collect: bool) -> Self {
        Prober {
            src: Source::new(r, len),
            tracks: Vec::new(),
            fragmented: false,
            truncated: false,
            moov: false,
            movie_us: None,
            collect: collect.then(Collected::default),
            codec_key: Vec::new(),
        }
    }

    fn len(&self) -> u64 {
        self.src.len
    }

    /// The header of the top-level box at `at`, or `None` when the file ends inside it.
    fn header(&mut self, at: u64) -> Result<Option<BoxHeader>> {
        let len = self.len();
        self.src.header(at, len)
    }

    /// Walks the top-level boxes from `at`; stops after the first `moof` when `stop_after_moof`.
    /// Returns the offset where it stopped.
    fn walk(&mut self, mut at: u64, stop_after_moof: Option<()>) -> Result<u64> {
        while at < self.len() {
            let Some(h) = self.header(at)? else {
                if at == 0 {
                    return Err(Error::corrupt(
                        "not an MP4 file: shorter than one box header",
                    ));
                }
                self.truncated = true;
                break;
            };
            if at == 0 && !FIRST_BOXES.contains(&&h.kind) {
                return Err(Error::corrupt(
                    "not an MP4 file: it does not start with an ftyp or moov box",
                ));
            }
            match &h.kind {
                b"moov" => {
                    let end = h
                        .end
                        .ok_or_else(|| Error::corrupt("the file ends inside its moov box"))?;
                    self.moov(&h, end).map_err(|e| e.context("moov"))?;
                }
                b"moof" => {
                    if !self.moov {
                        return Err(Error::corrupt("moof before moov"));
                    }
                    self.fragmented = true;
                    if !self.moof(&h)? {
                        self.truncated = true;
                        break;
                    }
                    if stop_after_moof.is_some() {
                        return Ok(h.end.unwrap_or(self.len()));
                    }
                }
                // The fragment index comes last; nothing after it is media.
                b"mfra" => break,
                _ => {}
            }
            match h.end {
                Some(end) => at = end,
                None => {
                    self.truncated = true;
                    break;
                }
            }
        }
        Ok(at)
    }

    /// Reads the movie header, each track's header, media header, handler and sample
    /// description, and the fragment defaults; everything else in the `moov` is skipped.
    fn moov(&mut self, h: &BoxHeader, end: u64) -> Result<()> {
        let mut movie = None;
        let mut traks = Vec::new();
        let mut trex: Vec<[u8; 24]> = Vec::new();
        let mut kids = Children::of(h, end);
        while let Some((c, c_end)) = kids.next(&mut self.src)? {
            match &c.kind {
                b"mvhd" => {
                    movie = Some(boxes::timescale_duration(&boxes::versioned(
                        &mut self.src,
                        &c,
                        c_end,
                        20,
                    )?));
                }
                b"trak" => {
                    if traks.len() == MAX_TRACKS {
                        return Err(Error::corrupt(format!("more than {MAX_TRACKS} tracks")));
                    }
                    let mut t = TrakBoxes::default();
                    self.trak(&c, c_end, &mut t)?;
                    traks.push(t);
                }
                b"mvex" => {
                    let mut kids = Children::of(&c, c_end);
                    while let Some((x, x_end)) = kids.next(&mut self.src)? {
                        if &x.kind == b"trex" && trex.len() < MAX_TRACKS {
                            trex.push(self.src.leaf::<24>(&x, x_end)?);
                        }
                    }
                }
                _ => {}
            }
        }
        let (timescale, duration) = movie.ok_or_else(|| Error::corrupt("no mvhd box"))?;
        self.moov = true;
        if timescale > 0 && duration > 0 {
            self.movie_us = Some(rescale_us(duration, timescale));
        }
        self.codec_key.clear();
        self.tracks.clear();
        for t in traks {
            let id =
                t.id.ok_or_else(|| Error::corrupt("a trak has no tkhd box"))?;
            let (timescale, ticks) = t
                .mdhd
                .ok_or_else(|| Error::corrupt(format!("track {id} has no mdhd box")))?;
            let stsd = t
                .stsd
                .ok_or_else(|| Error::corrupt(format!("track {id} has no stsd box")))?;
            let kind = match &t.handler {
                b"vide" => Kind::Video,
                b"soun" => Kind::Audio,
                _ => Kind::Other,
            };
            let entry = boxes::sample_entry(&stsd, kind == Kind::Video);
            self.codec_key.extend_from_slice(&id.to_be_bytes());
            self.codec_key.extend_from_slice(&timescale.to_be_bytes());
            self.codec_key.extend_from_slice(&stsd);
            // trex: full box header, track id, description index, duration, size, flags.
            let trex = trex.iter().find(|x| be32(&x[4..]) == id);
            let default = |at: usize| trex.map_or(0, |x| be32(&x[at..]));
            self.tracks.push(Track {
                id,
                timescale,
                kind,
                codec: entry.codec,
                width: entry.width,
                height: entry.height,
                default_dur: default(12),
                default_size: default(16),
                default_flags: default(20),
                plain_ticks: ticks,
                first_ticks: None,
                end_ticks: 0,
                start_pts: 0,
            });
        }
        Ok(())
    }

    /// Reads the leaves of a `trak` the probe needs, descending only along
    /// `trak/mdia/minf/stbl`, so nesting cannot run deep.
    fn trak(&mut self, h: &BoxHeader, end: u64, t: &mut TrakBoxes) -> Result<()> {
        let mut kids = Children::of(h, end);
        while let Some((c, c_end)) = kids.next(&mut self.src)? {
            match (&h.kind, &c.kind) {
                (b"trak", b"mdia") | (b"mdia", b"minf") | (b"minf", b"stbl") => {
                    self.trak(&c, c_end, t)?;
                }
                (b"trak", b"tkhd") => {
                    let b = boxes::versioned(&mut self.src, &c, c_end, 16)?;
                    t.id = Some(boxes::tkhd_track_id(&b));
                }
                (b"mdia", b"mdhd") => {
                    let b = boxes::versioned(&mut self.src, &c, c_end, 20)?;
                    t.mdhd = Some(boxes::timescale_duration(&b));
                }
                (b"mdia", b"hdlr") => {
                    let b = self.src.leaf::<12>(&c, c_end)?;
                    t.handler = [b[8], b[9], b[10], b[11]];
                }
                (b"stbl", b"stsd") => t.stsd = Some(self.src.body(&c, c_end, MAX_STSD)?),
                _ => {}
            }
        }
        Ok(())
    }

    /// Accounts one fragment. Returns false when it is incomplete (its box or its sample data
    /// runs past the end of the file), in which case nothing of it is counted.
    fn moof(&mut self, h: &BoxHeader) -> Result<bool> {
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
                b"tfhd" => tfhd = Some(boxes::tfhd(&mut self.src, &c, c_end)?),
                b"tfdt" => tfdt = Some(boxes::tfdt(&mut self.src, &c, c_end)?),
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
        let defaults = boxes::Defaults {
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
            let run = boxes::trun(&mut self.src, &c, c_end, defaults)?;
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

    /// The fast path for a finished fragmented file: read the start up to the first fragment,
    /// then only each track's last fragment, found through `mfra`. Returns false when the file
    /// has no usable `mfra`, so the caller walks it instead.
    fn probe_with_mfra(&mut self) -> Result<bool> {
        if self.len() < 16 {
            return Ok(false);
        }
        let mut tail = [0u8; 16];
        self.src.read_at(self.len() - 16, &mut tail)?;
        if &tail[0..8] != b"\0\0\0\x10mfro" {
            return Ok(false);
        }
        let mfra_size = u64::from(u32::from_be_bytes([tail[12], tail[13], tail[14], tail[15]]));
        let Some(mfra_at) = self.len().checked_sub(mfra_size) else {
            return Ok(false);
        };
        let Some(h) = self.header(mfra_at)? else {
            return Ok(false);
        };
        if &h.kind != b"mfra" || h.end != Some(self.len()) {
            return Ok(false);
        }
        let mut last_by_track: Vec<(u32, u64)> = Vec::new();
        let mut at = h.body;
        while at < self.len() - 16 {
            let Some(child) = self.header(at)? else {
                return Ok(false);
            };
            let Some(end) = child.end else {
                return Ok(false);
            };
            if &child.kind == b"tfra" {
                match self.last_tfra_entry(&child, end)? {
                    Some(e) => last_by_track.push(e),
                    None => return Ok(false),
                }
            }
            at = end;
        }

        let after_first = self.walk(0, Some(()))?;
        if !self.fragmented || self.truncated {
            return Ok(false);
        }
        let mut last_moofs: Vec<u64> = Vec::new();
        for t in &self.tracks {
            let Some(&(_, last)) = last_by_track.iter().find(|(id, _)| *id == t.id) else {
                return Ok(false);
            };
            if t.first_ticks.is_none() || last >= mfra_at {
                return Ok(false);
            }
            if !last_moofs.contains(&last) {
                last_moofs.push(last);
            }
        }
        last_moofs.sort_unstable();
        let mut last_end = after_first;
        for at in last_moofs {
            if at < after_first {
                continue;
            }
            let Some(h) = self.header(at)? else {
                return Ok(false);
            };
            if &h.kind != b"moof" || !self.moof(&h)? {
                return Ok(false);
            }
            last_end = h.end.unwrap_or(self.len());
        }
        // The index lists only fragments that start with a sync sample; the last one it lists
        // must also be the last in the file, or the file is walked instead.
        match self.header(last_end)? {
            Some(h) if &h.kind == b"mdat" && h.end == Some(mfra_at) => Ok(true),
            _ => Ok(last_end == mfra_at && after_first == mfra_at),
        }
    }

    /// `(track id, moof offset)` of the last entry of a `tfra` box. Only that entry is read:
    /// a 15-minute segment has a thousand entries per track and the probe needs one.
    fn last_tfra_entry(&mut self, h: &BoxHeader, end: u64) -> Result<Option<(u32, u64)>> {
        if end - h.body < 16 {
            return Ok(None);
        }
        let mut head = [0u8; 16];
        self.src.read_at(h.body, &mut head)?;
        let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let version = head[0];
        let track_id = be32(&head[4..8]);
        let sizes = be32(&head[8..12]);
        let count = u64::from(be32(&head[12..16]));
        let field: u64 = if version == 1 { 8 } else { 4 };
        let numbers =
            u64::from((sizes >> 4) & 3) + u64::from((sizes >> 2) & 3) + u64::from(sizes & 3) + 3;
        let entry = 2 * field + numbers;
        if count == 0 || (count - 1) * entry + entry > end - h.body - 16 {
            return Ok(None);
        }
        let mut moof = [0u8; 8];
        let at = h.body + 16 + (count - 1) * entry + field;
        let moof = if version == 1 {
            self.src.read_at(at, &mut moof)?;
            u64::from_be_bytes(moof)
        } else {
            self.src.read_at(at, &mut moof[..4])?;
            u64::from(be32(&moof[..4]))
        };
        Ok(Some((track_id, moof)))
    }

    fn finish(self) -> Result<Probe> {
        if !self.moov {
            return Err(Error::corrupt(if self.truncated {
                "the file ends before its moov box"
            } else {
                "no moov box: not an MP4 file"
            }));
        }
        let fragmented = self.fragmented;
        // As ffprobe does: from the earliest start of any track to the latest end of any track,
        // each rescaled to microseconds on its own.
        let timed = || {
            self.tracks
                .iter()
                .filter(|t| t.timescale > 0 && (!fragmented || t.first_ticks.is_some()))
        };
        let start_us = |t: &Track| {
            if fragmented {
                rescale_signed_us(t.start_pts, t.timescale)
            } else {
                0
            }
        };
        let first_us = timed().map(start_us).min().unwrap_or(0);
        let last_us = timed()
            .map(|t| {
                start_us(t).saturating_add(
                    i64::try_from(rescale_us(t.duration_ticks(fragmented), t.timescale))
                        .unwrap_or(i64::MAX),
                )
            })
            .max()
            .unwrap_or(0);
        let tracks_us = u64::try_from(last_us.saturating_sub(first_us)).unwrap_or(0);
        let duration_us = match (fragmented, self.movie_us) {
            (false, Some(us)) => us,
            _ => tracks_us,
        };
        let video = self.tracks.iter().find(|t| t.kind == Kind::Video);
        let audio = self.tracks.iter().find(|t| t.kind == Kind::Audio);
        Ok(Probe {
            duration_us,
            fragmented,
            truncated: self.truncated,
            video_codec: video.and_then(|t| t.codec.clone()),
            width: video.map_or(0, |t| t.width),
            height: video.map_or(0, |t| t.height),
            audio_codec: audio.and_then(|t| t.codec.clone()),
        })
    }
}

/// `ticks / timescale` seconds in microseconds, rounded to nearest as ffmpeg's `av_rescale` does.
fn rescale_us(ticks: u64, timescale: u32) -> u64 {
    let ts = u128::from(timescale);
    ((u128::from(ticks) * 1_000_000 + ts / 2) / ts).min(u128::from(u64::MAX)) as u64
}

fn rescale_signed_us(ticks: i64, timescale: u32) -> i64 {
    let us = rescale_us(ticks.unsigned_abs(), timescale);
    let us = i64::try_from(us).unwrap_or(i64::MAX);
    if ticks < 0 { -us } else { us }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn rescale_rounds_to_nearest() {
        assert_eq!(rescale_us(48_000, 48_000), 1_000_000);
        assert_eq!(rescale_us(1, 3), 333_333);
        assert_eq!(rescale_us(2, 3), 666_667);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for data in [
            &b""[..],
            b"\0\0\0\x08free",
            b"\0\0\0\x01moov",
            b"\xff\xff\xff\xffmoov",
            b"hello world, not mp4",
        ] {
            let r = probe(&mut Cursor::new(data), data.len() as u64);
            assert!(r.is_err(), "{data:?} gave {r:?}");
        }
    }

    #[test]
    fn a_moof_is_rewritten_in_place() {
        use mp4_atom::{Decode, Encode, Mfhd, Moof, Tfdt, Tfhd, Traf};
        let traf = |track_id, base: Option<u64>, dts| Traf {
            tfhd: Tfhd {
                track_id,
                base_data_offset: base,
                ..Default::default()
            },
            tfdt: Some(Tfdt {
                base_media_decode_time: dts,
            }),
            ..Default::default()
        };
        let moof = Moof {
            mfhd: Mfhd { sequence_number: 7 },
            traf: vec![traf(1, None, 1000), traf(2, Some(5000), 90_000)],
        };
        let mut buf = Vec::new();
        moof.encode(&mut buf).unwrap();
        let len = buf.len();
        rewrite_moof(&mut buf, 42, 300, &[(1, 500), (2, -90_000)]).unwrap();
        assert_eq!(buf.len(), len);
        let got = Moof::decode(&mut &buf[..]).unwrap();
        assert_eq!(got.mfhd.sequence_number, 42);
        let dts: Vec<u64> = got
            .traf
            .iter()
            .map(|t| t.tfdt.as_ref().unwrap().base_media_decode_time)
            .collect();
        assert_eq!(dts, [1500, 0]);
        assert_eq!(got.traf[0].tfhd.base_data_offset, None);
        assert_eq!(got.traf[1].tfhd.base_data_offset, Some(5300));

        // A decode time cannot go below zero; a version 0 tfdt cannot grow past 32 bits.
        let mut again = buf.clone();
        assert!(rewrite_moof(&mut again, 1, 0, &[(2, -1)]).is_err());
        let tfdt_at = buf.windows(4).position(|w| w == b"tfdt").unwrap() - 4;
        let mut v0 = buf[..tfdt_at].to_vec();
        v0.extend_from_slice(&[0, 0, 0, 16, b't', b'f', b'd', b't', 0, 0, 0, 0, 0, 0, 0, 9]);
        v0.extend_from_slice(&buf[tfdt_at + 20..]);
        let shrink = |b: &mut Vec<u8>, at: usize| {
            let n = u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) - 4;
            b[at..at + 4].copy_from_slice(&n.to_be_bytes());
        };
        shrink(&mut v0, 0);
        let traf_at = v0.windows(4).position(|w| w == b"traf").unwrap() - 4;
        shrink(&mut v0, traf_at);
        let mut ok = v0.clone();
        rewrite_moof(&mut ok, 1, 0, &[(1, 1)]).unwrap();
        assert_eq!(
            Moof::decode(&mut &ok[..]).unwrap().traf[0].tfdt,
            Some(Tfdt {
                base_media_decode_time: 10
            })
        );
        assert!(rewrite_moof(&mut v0, 1, 0, &[(1, 1 << 32)]).is_err());
        assert!(rewrite_moof(&mut b"\0\0\0\x08free".to_vec(), 1, 0, &[]).is_err());
    }

    #[test]
    fn a_huge_box_claim_does_not_allocate() {
        let mut data = b"\0\0\0\x01moov".to_vec();
        data.extend_from_slice(&(1u64 << 40).to_be_bytes());
        data.extend_from_slice(&[0; 64]);
        let e = probe(&mut Cursor::new(&data), data.len() as u64).unwrap_err();
        assert!(e.msg.contains("moov"), "{e}");
    }
}
