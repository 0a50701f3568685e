//! Stitched playback (SPEC §4.1): the fragments of consecutive segments laid out as one
//! fragmented MP4 whose media time runs on without a jump, and the map from that media time
//! back to wall-clock time.
//!
//! Invariants:
//! - A plan is only a [`Layout`]: the first segment's header, generated `sidx` boxes, then the
//!   segments' own fragments. Nothing is copied or decoded; each `moof` is rewritten in place
//!   as it is sent, so the size of the whole answer is known before the first byte.
//! - The clock track (video) runs on without a jump: each segment's decode times are shifted so
//!   it starts where the previous one ended, which also closes gaps. The other tracks of a
//!   segment move by the same time, so they stay in step with video and never drift, pushed
//!   later only where their decode times would otherwise stop rising. (The muxer starts every
//!   track of a segment at 0 and so stretches its audio by a few milliseconds; laying audio back
//!   to back would add that up, segment after segment.)
//! - A plan starts at the keyframe fragment at or before its start (or, for a start in a gap,
//!   the first one after it) and stops before a segment whose codec configuration differs from
//!   the first one's.

use std::path::PathBuf;
use std::sync::Arc;

use ntex::util::Bytes;

use crate::error::{Error, Result};
use crate::media::layout::{Layout, Part};
use crate::media::{self, Fragments};

/// Two segments further apart than this (in wall time) have a gap between them. Segment names
/// carry whole seconds, so back-to-back segments can seem up to a second apart.
pub const GAP_US: i64 = 1_000_000;

/// One segment file that may go into a plan.
#[derive(Debug, Clone)]
pub struct Source {
    /// `None` for the segment still being written, which is not indexed yet.
    pub recording_id: Option<u64>,
    pub start_ms: i64,
    pub path: PathBuf,
    pub frags: Arc<Fragments>,
}

/// A run of footage with no gap, placed in the stitched file's media time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub media_start_us: i64,
    pub start_us: i64,
    pub end_us: i64,
    pub recording_id: Option<u64>,
}

#[derive(Debug)]
pub struct Plan {
    pub start_us: i64,
    pub end_us: i64,
    /// The clock track's length in the stitched file.
    pub duration_us: i64,
    pub spans: Vec<Span>,
    pub layout: Arc<Layout>,
    /// Per file of the layout: how many of its bytes the plan needs.
    pub needs: Vec<u64>,
    /// Set when the plan ends early because a segment's codec configuration differs.
    pub cut_short: Option<String>,
}

impl Plan {
    /// About how much memory this holds (its layout included), for caches bounded in bytes.
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.spans.len() * std::mem::size_of::<Span>()
            + self.needs.len() * 8
            + self.layout.heap_bytes()
    }

    /// A stable identity of the bytes this plan serves.
    pub fn etag(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        self.layout.files.hash(&mut h);
        self.needs.hash(&mut h);
        self.start_us.hash(&mut h);
        self.layout.len().hash(&mut h);
        format!("\"p{:016x}-{:x}\"", h.finish(), self.layout.len())
    }
}

fn ticks_to_us(ticks: i128, timescale: u32) -> i64 {
    let ts = i128::from(timescale.max(1));
    let us = (ticks * 1_000_000 + ts / 2).div_euclid(ts);
    i64::try_from(us).unwrap_or(i64::MAX)
}

fn rescale(ticks: i128, from: u32, to: u32) -> i128 {
    let from = i128::from(from.max(1));
    (ticks * i128::from(to) + from / 2).div_euclid(from)
}

/// Where each track's time has got to in an output made of moved fragments, which decides how
/// the next file's fragments are shifted. Stitched playback and the live view both use it.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// Per track: where its last fragment ends, in its ticks.
    pub end: Vec<i128>,
    /// Per track: the decode time of its last sample.
    last: Vec<i128>,
}

impl Timeline {
    pub fn new(tracks: usize) -> Timeline {
        Timeline {
            end: vec![0; tracks],
            last: vec![-1; tracks],
        }
    }

    /// The `(track id, ticks)` shifts for the fragments of `f` from fragment `from` on: the
    /// clock track starts exactly where the output's ends; the others move by the same time,
    /// pushed later only where their decode times would otherwise stop rising.
    pub fn shift(&self, f: &Fragments, from: usize) -> Vec<(u32, i64)> {
        let clock = f.clock_track();
        let tracks = &f.tracks;
        let delta_clock = self.end[clock] - i128::from(f.dts(from, clock));
        tracks
            .iter()
            .enumerate()
            .map(|(t, tr)| {
                let d = if t == clock {
                    delta_clock
                } else {
                    let ideal = rescale(delta_clock, tracks[clock].timescale, tr.timescale);
                    ideal.max(self.last[t] + 1 - i128::from(f.dts(from, t)))
                };
                (tr.id, i64::try_from(d).unwrap_or(i64::MAX))
            })
            .collect()
    }

    /// Accounts fragment `i` of `f`, moved by `shift`.
    pub fn add(&mut self, f: &Fragments, i: usize, shift: &[(u32, i64)]) {
        for (t, &(dts, ticks)) in f.times(i).iter().enumerate() {
            let moved = i128::from(shift[t].1);
            self.end[t] = self.end[t].max(i128::from(dts) + moved + i128::from(ticks));
            if ticks > 0 {
                self.last[t] = i128::from(f.last_dts(i, t)) + moved;
            }
        }
    }
}

/// The wall time of fragment `i` of `s`, in µs since the epoch: the segment's start plus the
/// clock track's decode time since its first fragment.
fn wall_us(s: &Source, i: usize) -> i64 {
    let f = &s.frags;
    let r = f.clock_track();
    let since = i128::from(f.dts(i, r)) - i128::from(f.dts(0, r));
    s.start_ms * 1000 + ticks_to_us(since, f.tracks[r].timescale)
}

/// Where source `s` ends in wall time.
fn wall_end_us(s: &Source) -> i64 {
    let f = &s.frags;
    let last = f.frags.len() - 1;
    let r = f.clock_track();
    wall_us(s, last) + ticks_to_us(i128::from(f.ticks(last, r)), f.tracks[r].timescale)
}

/// Plans the stitched file of `sources` (oldest first) for `[start_us, end_us]`.
pub fn plan(sources: &[Source], start_us: Option<i64>, end_us: Option<i64>) -> Result<Plan> {
    let sources: Vec<&Source> = sources
        .iter()
        .filter(|s| !s.frags.frags.is_empty())
        .collect();
    let none = || Error::not_found("no footage in that range");
    // The first fragment: the last keyframe at or before `start`, else the first keyframe.
    let keys = || {
        sources.iter().enumerate().flat_map(|(si, s)| {
            s.frags
                .frags
                .iter()
                .enumerate()
                .filter(|(_, f)| f.key)
                .map(move |(i, _)| (si, i, wall_us(s, i)))
        })
    };
    // A start in a gap, or after everything, begins with the footage after it.
    let first = match start_us {
        Some(start) => keys()
            .take_while(|&(_, _, w)| w <= start)
            .last()
            .filter(|&(si, _, _)| wall_end_us(sources[si]) > start)
            .or_else(|| keys().find(|&(_, _, w)| w > start)),
        None => keys().next(),
    };
    let (s0, i0, w0) = first.ok_or_else(none)?;
    if end_us.is_some_and(|e| w0 > e) {
        return Err(none());
    }

    let head = &sources[s0].frags;
    let clock = head.clock_track();
    let tracks = &head.tracks;
    let mut files: Vec<PathBuf> = Vec::new();
    let mut needs: Vec<u64> = Vec::new();
    let mut edits: Vec<Vec<(u32, i64)>> = Vec::new();
    let mut parts: Vec<Part> = Vec::new();
    let mut sidx_refs: Vec<(u64, &[(u64, u64)])> = Vec::new();
    let mut time = Timeline::new(tracks.len());
    let mut starts: Vec<u64> = Vec::new();
    let mut spans: Vec<Span> = Vec::new();
    let mut cut_short = None;
    let mut prev_end: Option<i64> = None;
    let mut seq: u32 = 0;

    'sources: for (si, s) in sources.iter().enumerate().skip(s0) {
        let f = &s.frags;
        if f.codec_key != head.codec_key {
            cut_short = Some(format!(
                "{} has other codec parameters",
                s.path.file_name().unwrap_or_default().to_string_lossy()
            ));
            break;
        }
        let from = if si == s0 { i0 } else { 0 };
        let w_from = wall_us(s, from);
        if end_us.is_some_and(|e| si != s0 && w_from >= e) {
            break;
        }
        let gap = prev_end.is_none_or(|p| w_from - p > GAP_US);
        let shift = time.shift(f, from);
        if starts.is_empty() {
            starts = tracks
                .iter()
                .enumerate()
                .map(|(t, tr)| {
                    let cts = tr.start_pts - i64::try_from(f.dts(0, t)).unwrap_or(0);
                    let dts = i64::try_from(f.dts(from, t)).unwrap_or(0) + shift[t].1;
                    u64::try_from(dts + cts.max(0)).unwrap_or(0)
                })
                .collect();
        }
        let media_start_us = ticks_to_us(time.end[clock], tracks[clock].timescale);
        if gap {
            spans.push(Span {
                media_start_us,
                start_us: w_from,
                end_us: w_from,
                recording_id: s.recording_id,
            });
        }
        let file = u32::try_from(files.len()).map_err(|_| Error::bad_request("range too long"))?;
        let edit = u32::try_from(edits.len()).map_err(|_| Error::bad_request("range too long"))?;
        files.push(s.path.clone());
        needs.push(0);
        edits.push(shift.clone());
        for i in from..f.frags.len() {
            if i > from && end_us.is_some_and(|e| wall_us(s, i) >= e) {
                break 'sources;
            }
            let fr = f.frags[i];
            seq = seq.wrapping_add(1);
            parts.push(Part::Frag {
                file,
                offset: fr.offset,
                len: fr.size,
                moof_len: fr.moof_len,
                seq,
                edit,
            });
            sidx_refs.push((fr.size, f.times(i)));
            needs[file as usize] = fr.offset + fr.size;
            time.add(f, i, &shift);
            if let Some(span) = spans.last_mut() {
                let media_end = ticks_to_us(time.end[clock], tracks[clock].timescale);
                span.end_us = span.start_us + (media_end - span.media_start_us);
            }
        }
        prev_end = Some(wall_end_us(s));
    }

    let sidx = media::sidx_boxes(tracks, &starts, sidx_refs.iter().copied());
    let mut all = vec![
        Part::File {
            file: 0,
            offset: 0,
            len: head.head_len,
        },
        Part::Mem(Bytes::from(sidx)),
    ];
    all.append(&mut parts);
    needs[0] = needs[0].max(head.head_len);
    let duration_us = ticks_to_us(time.end[clock], tracks[clock].timescale);
    Ok(Plan {
        start_us: spans.first().map_or(w0, |s| s.start_us),
        end_us: spans.last().map_or(w0, |s| s.end_us),
        duration_us,
        spans,
        layout: Arc::new(Layout::new(files, edits, all)),
        needs,
        cut_short,
    })
}
