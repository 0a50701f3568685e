//! The probe: duration, codecs and frame size of a file, as ffprobe reports them.
//!
//! Invariants:
//! - A finished fragmented file with an `mfra` index is probed from its first and last
//!   fragments only, which gives the same answer as walking every fragment.
//! - A fragment counts only when its `moof` and all the sample data it points at lie inside the
//!   file; anything after the last complete fragment makes the result `truncated`.

use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;

use super::boxes::{BoxHeader, Children, MAX_STSD, MAX_TRACKS, Source, be32};
use super::fragments::Collected;
use super::leaves;
use crate::error::{Error, Result};

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
pub(super) enum Kind {
    Video,
    Audio,
    Other,
}

#[derive(Debug)]
pub(super) struct Track {
    pub(super) id: u32,
    pub(super) timescale: u32,
    pub(super) kind: Kind,
    pub(super) codec: Option<String>,
    pub(super) width: u32,
    pub(super) height: u32,
    /// `trex` default sample duration, size and flags.
    pub(super) default_dur: u32,
    pub(super) default_size: u32,
    pub(super) default_flags: u32,
    /// Plain MP4: `mdhd`'s duration.
    pub(super) plain_ticks: u64,
    /// Fragmented: decode time of the first fragment and end of the last complete one.
    pub(super) first_ticks: Option<u64>,
    pub(super) end_ticks: u64,
    /// Fragmented: the earliest presentation time of the first fragment (B-frames delay it).
    pub(super) start_pts: i64,
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

pub(super) struct Prober<'r, R> {
    pub(super) src: Source<'r, R>,
    pub(super) tracks: Vec<Track>,
    pub(super) fragmented: bool,
    pub(super) truncated: bool,
    pub(super) moov: bool,
    /// `mvhd`'s duration, which is what players and ffprobe take for a plain MP4.
    pub(super) movie_us: Option<u64>,
    /// When set, every complete fragment is collected here.
    pub(super) collect: Option<Collected>,
    /// See [`Fragments::codec_key`].
    pub(super) codec_key: Vec<u8>,
}

/// What a `trak` says, as it is read.
#[derive(Default)]
struct TrakBoxes {
    id: Option<u32>,
    mdhd: Option<(u32, u64)>,
    handler: [u8; 4],
    stsd: Option<Vec<u8>>,
}

impl<'r, R: Read + Seek> Prober<'r, R> {
    pub(super) fn new(r: &'r mut R, len: u64, collect: bool) -> Self {
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

    pub(super) fn len(&self) -> u64 {
        self.src.len
    }

    /// The header of the top-level box at `at`, or `None` when the file ends inside it.
    fn header(&mut self, at: u64) -> Result<Option<BoxHeader>> {
        let len = self.len();
        self.src.header(at, len)
    }

    /// Walks the top-level boxes from `at`; stops after the first `moof` when `stop_after_moof`.
    /// Returns the offset where it stopped.
    pub(super) fn walk(&mut self, mut at: u64, stop_after_moof: Option<()>) -> Result<u64> {
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
                    // Fragments already read name the tracks of the first one.
                    if self.moov {
                        return Err(Error::corrupt("a second moov box"));
                    }
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
                    movie = Some(leaves::timescale_duration(&leaves::versioned(
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
            let entry = leaves::sample_entry(&stsd, kind == Kind::Video);
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
                    let b = leaves::versioned(&mut self.src, &c, c_end, 16)?;
                    t.id = Some(leaves::tkhd_track_id(&b));
                }
                (b"mdia", b"mdhd") => {
                    let b = leaves::versioned(&mut self.src, &c, c_end, 20)?;
                    t.mdhd = Some(leaves::timescale_duration(&b));
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
    fn a_huge_box_claim_does_not_allocate() {
        let mut data = b"\0\0\0\x01moov".to_vec();
        data.extend_from_slice(&(1u64 << 40).to_be_bytes());
        data.extend_from_slice(&[0; 64]);
        let e = probe(&mut Cursor::new(&data), data.len() as u64).unwrap_err();
        assert!(e.msg.contains("moov"), "{e}");
    }
}
