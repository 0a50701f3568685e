//! The leaf boxes the probe reads, each from its fixed layout: movie, track and media headers,
//! the sample description, the fragment defaults, and `trun` runs summed without keeping their
//! samples. Every count is checked against the bytes of its box first.

use std::io::{Read, Seek};

use super::boxes::{BoxHeader, Source, be32, be64, children, fourcc};
use crate::error::{Error, Result};

/// `(timescale, duration)` from an `mvhd` or `mdhd` body's start (32 bytes, zero-padded).
pub fn timescale_duration(b: &[u8; 32]) -> (u32, u64) {
    if b[0] == 1 {
        (be32(&b[20..]), be64(&b[24..]))
    } else {
        (be32(&b[12..]), u64::from(be32(&b[16..])))
    }
}

/// Reads the first bytes of a version 0 or 1 full box whose fields after the version grow
/// from `v0` to `v1` bytes: a version 1 body must have `v1` bytes, a version 0 one `v0`.
pub fn versioned<R: Read + Seek, const N: usize>(
    src: &mut Source<'_, R>,
    h: &BoxHeader,
    end: u64,
    v0: u64,
) -> Result<[u8; N]> {
    let avail = end - h.body;
    let mut b = [0u8; N];
    let version = src.leaf::<1>(h, end)?[0];
    let need = if version == 1 { N as u64 } else { v0 };
    if avail < need {
        return Err(Error::corrupt(format!(
            "{} box at byte {} is too short",
            h.name(),
            h.start
        )));
    }
    src.read_at(h.body, &mut b[..need as usize])?;
    Ok(b)
}

/// The track id in a `tkhd` body's start (24 bytes, zero-padded).
pub fn tkhd_track_id(b: &[u8; 24]) -> u32 {
    if b[0] == 1 {
        be32(&b[20..])
    } else {
        be32(&b[12..])
    }
}

/// What a sample description says of a track: its codec and frame size.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SampleEntry {
    pub codec: Option<String>,
    pub width: u32,
    pub height: u32,
}

/// The first sample entry of an `stsd` body, named as ffprobe names codecs.
pub fn sample_entry(stsd: &[u8], video: bool) -> SampleEntry {
    // Full box header, entry count, then the entries.
    let Some((kind, body)) = stsd.get(8..).and_then(|b| children(b).next()) else {
        return SampleEntry::default();
    };
    let (width, height) = match body.get(24..28) {
        Some(wh) if video => (
            u32::from(u16::from_be_bytes([wh[0], wh[1]])),
            u32::from(u16::from_be_bytes([wh[2], wh[3]])),
        ),
        _ => (0, 0),
    };
    let name = match &kind {
        b"avc1" | b"avc3" => "h264",
        b"hvc1" | b"hev1" => "hevc",
        b"vp08" => "vp8",
        b"vp09" => "vp9",
        b"av01" => "av1",
        b"jpeg" | b"mjpa" | b"mjpb" => "mjpeg",
        b"mp4a" => match mp4a_object_type(body) {
            // MPEG-1/2 audio in an MP4 is an mp4a entry with these object types.
            Some(0x69 | 0x6B) => "mp3",
            _ => "aac",
        },
        b".mp3" => "mp3",
        b"Opus" => "opus",
        b"fLaC" => "flac",
        b"ac-3" => "ac3",
        b"ec-3" => "eac3",
        b"samr" => "amr_nb",
        b"ipcm" | b"fpcm" | b"sowt" | b"twos" | b"lpcm" | b"in24" | b"in32" | b"fl32" | b"fl64"
        | b"s16l" => "pcm",
        _ => {
            return SampleEntry {
                codec: Some(fourcc(&kind)),
                width,
                height,
            };
        }
    };
    SampleEntry {
        codec: Some(name.to_owned()),
        width,
        height,
    }
}

/// The `objectTypeIndication` of an `mp4a` entry's `esds`, if it has one.
fn mp4a_object_type(entry: &[u8]) -> Option<u8> {
    // A sound sample entry: 28 bytes, 16 more in QuickTime's version 1, 36 more in version 2.
    let skip = match entry.get(8..10)? {
        [0, 1] => 44,
        [0, 2] => 64,
        _ => 28,
    };
    let kids = entry.get(skip..)?;
    let esds = children(kids).find_map(|(k, b)| match &k {
        b"esds" => Some(b),
        // QuickTime wraps it in a `wave` box.
        b"wave" => children(b).find_map(|(k, b)| (&k == b"esds").then_some(b)),
        _ => None,
    })?;
    // Full box header, then an ES_Descriptor (tag 3) holding a DecoderConfigDescriptor (tag 4).
    let (tag, es) = descriptor(esds.get(4..)?)?;
    if tag != 3 {
        return None;
    }
    let flags = *es.get(2)?;
    let mut at = 3;
    if flags & 0x80 != 0 {
        at += 2;
    }
    if flags & 0x40 != 0 {
        at += 1 + usize::from(*es.get(at)?);
    }
    if flags & 0x20 != 0 {
        at += 2;
    }
    let mut rest = es.get(at..)?;
    while !rest.is_empty() {
        let (tag, body) = descriptor(rest)?;
        if tag == 4 {
            return body.first().copied();
        }
        let used = body.as_ptr() as usize - rest.as_ptr() as usize + body.len();
        rest = &rest[used..];
    }
    None
}

/// A descriptor's tag and body: a tag byte, a size of up to four 7-bit bytes, the body.
fn descriptor(b: &[u8]) -> Option<(u8, &[u8])> {
    let tag = *b.first()?;
    let mut size = 0usize;
    let mut at = 1;
    loop {
        let c = *b.get(at)?;
        at += 1;
        size = (size << 7) | usize::from(c & 0x7F);
        if c & 0x80 == 0 {
            break;
        }
        if at > 4 {
            return None;
        }
    }
    Some((tag, b.get(at..at.checked_add(size)?)?))
}

/// A `tfhd`: the track and the defaults its runs inherit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tfhd {
    pub track_id: u32,
    pub base_data_offset: Option<u64>,
    pub default_duration: Option<u32>,
    pub default_size: Option<u32>,
    pub default_flags: Option<u32>,
}

pub fn tfhd<R: Read + Seek>(src: &mut Source<'_, R>, h: &BoxHeader, end: u64) -> Result<Tfhd> {
    let head = src.leaf::<8>(h, end)?;
    let flags = be32(&head) & 0x00FF_FFFF;
    let mut at = h.body + 8;
    let mut field = |src: &mut Source<'_, R>, present: bool, n: u64| -> Result<Option<u64>> {
        if !present {
            return Ok(None);
        }
        if at + n > end {
            return Err(Error::corrupt(format!(
                "tfhd at byte {} is too short",
                h.start
            )));
        }
        let mut b = [0u8; 8];
        src.read_at(at, &mut b[..n as usize])?;
        at += n;
        Ok(Some(if n == 8 {
            be64(&b)
        } else {
            u64::from(be32(&b))
        }))
    };
    let base_data_offset = field(src, flags & 0x01 != 0, 8)?;
    field(src, flags & 0x02 != 0, 4)?;
    let as32 = |v: Option<u64>| v.map(|v| v as u32);
    let default_duration = as32(field(src, flags & 0x08 != 0, 4)?);
    let default_size = as32(field(src, flags & 0x10 != 0, 4)?);
    let default_flags = as32(field(src, flags & 0x20 != 0, 4)?);
    Ok(Tfhd {
        track_id: be32(&head[4..]),
        base_data_offset,
        default_duration,
        default_size,
        default_flags,
    })
}

/// A `tfdt`'s base media decode time.
pub fn tfdt<R: Read + Seek>(src: &mut Source<'_, R>, h: &BoxHeader, end: u64) -> Result<u64> {
    let b = versioned::<R, 12>(src, h, end, 8)?;
    Ok(if b[0] == 1 {
        be64(&b[4..])
    } else {
        u64::from(be32(&b[4..]))
    })
}

/// The defaults a run's samples fall back on.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub duration: u32,
    pub size: u32,
    pub flags: u32,
}

/// What one `trun` adds up to.
#[derive(Debug, Clone, Copy, Default)]
pub struct Run {
    pub data_offset: Option<i32>,
    pub samples: u64,
    pub ticks: u64,
    pub bytes: u64,
    /// The flags of its first sample.
    pub first_flags: Option<u32>,
    pub last_duration: u32,
    /// The smallest composition offset (0 when the run has none).
    pub min_cts: i64,
}

/// Adds up a `trun` without keeping its samples. A run with per-sample fields must hold every
/// one of its entries; one without them is summed in closed form, whatever its count.
pub fn trun<R: Read + Seek>(
    src: &mut Source<'_, R>,
    h: &BoxHeader,
    end: u64,
    d: Defaults,
) -> Result<Run> {
    let short = || Error::corrupt(format!("trun at byte {} is too short", h.start));
    let head = src.leaf::<8>(h, end)?;
    let version = head[0];
    let flags = be32(&head) & 0x00FF_FFFF;
    let count = be32(&head[4..]);
    let mut at = h.body + 8;
    let mut word = |src: &mut Source<'_, R>| -> Result<u32> {
        if at + 4 > end {
            return Err(short());
        }
        let v = src.u32_at(at)?;
        at += 4;
        Ok(v)
    };
    let data_offset = if flags & 0x01 != 0 {
        Some(word(src)? as i32)
    } else {
        None
    };
    let first_flags = if flags & 0x04 != 0 {
        Some(word(src)?)
    } else {
        None
    };
    let has = |bit: u32| flags & bit != 0;
    let (has_dur, has_size, has_flags, has_cts) = (has(0x100), has(0x200), has(0x400), has(0x800));
    let entry = 4 * u64::from(
        u8::from(has_dur) + u8::from(has_size) + u8::from(has_flags) + u8::from(has_cts),
    );
    let mut run = Run {
        data_offset,
        samples: u64::from(count),
        ..Run::default()
    };
    if count == 0 {
        return Ok(run);
    }
    if entry == 0 {
        run.ticks = u64::from(count) * u64::from(d.duration);
        run.bytes = u64::from(count) * u64::from(d.size);
        run.first_flags = Some(first_flags.unwrap_or(d.flags));
        run.last_duration = d.duration;
        return Ok(run);
    }
    if u64::from(count) * entry > end - at {
        return Err(Error::corrupt(format!(
            "trun at byte {} claims {count} samples that its {} bytes cannot hold",
            h.start,
            end - h.body
        )));
    }
    let mut buf = [0u8; 4080];
    let per_chunk = buf.len() / entry as usize;
    let mut left = count as usize;
    let mut min_cts = i64::MAX;
    let mut first = true;
    while left > 0 {
        let n = left.min(per_chunk);
        let chunk = &mut buf[..n * entry as usize];
        src.read_at(at, chunk)?;
        at += chunk.len() as u64;
        left -= n;
        for e in chunk.chunks_exact(entry as usize) {
            let mut f = 0;
            let mut next = || {
                f += 4;
                be32(&e[f - 4..f])
            };
            let dur = if has_dur { next() } else { d.duration };
            let size = if has_size { next() } else { d.size };
            let sample_flags = if has_flags {
                next()
            } else if first {
                first_flags.unwrap_or(d.flags)
            } else {
                d.flags
            };
            let cts = if !has_cts {
                0
            } else if version == 0 {
                i64::from(next())
            } else {
                i64::from(next() as i32)
            };
            if first {
                run.first_flags = Some(sample_flags);
                first = false;
            }
            // Presentation time of this sample relative to the run's first decode time.
            min_cts = min_cts.min(
                i64::try_from(run.ticks)
                    .unwrap_or(i64::MAX)
                    .saturating_add(cts),
            );
            run.ticks = run.ticks.saturating_add(u64::from(dur));
            run.bytes = run.bytes.saturating_add(u64::from(size));
            run.last_duration = dur;
        }
    }
    run.min_cts = min_cts;
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::{Encode, Tfdt, Tfhd, Trun, TrunEntry};
    use std::io::Cursor;

    /// Encodes `b` with mp4-atom, an independent implementation, and hands its header to `f`.
    fn with_box<T>(
        b: &impl Encode,
        f: impl FnOnce(&mut Source<'_, Cursor<&Vec<u8>>>, &BoxHeader, u64) -> T,
    ) -> T {
        let mut buf = Vec::new();
        b.encode(&mut buf).unwrap();
        let len = buf.len() as u64;
        let mut cur = Cursor::new(&buf);
        let mut src = Source::new(&mut cur, len);
        let h = src.header(0, len).unwrap().unwrap();
        f(&mut src, &h, len)
    }

    const D: Defaults = Defaults {
        duration: 3000,
        size: 7,
        flags: 0x0101_0000,
    };

    #[test]
    fn a_run_sums_as_its_entries_say() {
        let entries: Vec<TrunEntry> = (0..700i64)
            .map(|i| TrunEntry {
                duration: Some(1000 + i as u32),
                size: Some(10 + i as u32),
                flags: Some(if i == 0 { 0x0200_0000 } else { 0x0101_0000 }),
                cts: Some(2000 - 3 * i),
            })
            .collect();
        let trun = Trun {
            data_offset: Some(-8),
            samples: entries.clone().into(),
        };
        // 700 entries of 16 bytes span three of the reader's windows.
        let run = with_box(&trun, |src, h, end| super::trun(src, h, end, D).unwrap());
        assert_eq!(run.samples, 700);
        assert_eq!(run.data_offset, Some(-8));
        assert_eq!(
            run.ticks,
            entries
                .iter()
                .map(|e| u64::from(e.duration.unwrap()))
                .sum::<u64>()
        );
        assert_eq!(
            run.bytes,
            entries
                .iter()
                .map(|e| u64::from(e.size.unwrap()))
                .sum::<u64>()
        );
        assert_eq!(run.first_flags, Some(0x0200_0000));
        assert_eq!(run.last_duration, 1699);
        let mut dts = 0i64;
        let mut min = i64::MAX;
        for e in &entries {
            min = min.min(dts + e.cts.unwrap());
            dts += i64::from(e.duration.unwrap());
        }
        assert_eq!(run.min_cts, min);
    }

    #[test]
    fn a_run_without_fields_is_summed_whatever_its_count() {
        let trun = Trun {
            data_offset: None,
            samples: mp4_atom::TrunSamples::Inherited {
                count: u32::MAX,
                first_flags: Some(0x0200_0000),
            },
        };
        let run = with_box(&trun, |src, h, end| super::trun(src, h, end, D).unwrap());
        assert_eq!(run.samples, u64::from(u32::MAX));
        assert_eq!(run.ticks, u64::from(u32::MAX) * 3000);
        assert_eq!(run.bytes, u64::from(u32::MAX) * 7);
        assert_eq!(
            (run.first_flags, run.last_duration, run.min_cts),
            (Some(0x0200_0000), 3000, 0)
        );
    }

    #[test]
    fn a_run_claiming_more_entries_than_it_holds_is_refused() {
        let trun = Trun {
            data_offset: None,
            samples: vec![TrunEntry {
                size: Some(1),
                ..Default::default()
            }]
            .into(),
        };
        let mut buf = Vec::new();
        trun.encode(&mut buf).unwrap();
        buf[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
        let len = buf.len() as u64;
        let mut cur = Cursor::new(&buf);
        let mut src = Source::new(&mut cur, len);
        let h = src.header(0, len).unwrap().unwrap();
        let e = super::trun(&mut src, &h, len, D).unwrap_err();
        assert!(e.msg.contains("cannot hold"), "{e}");
    }

    #[test]
    fn fragment_headers_read_as_mp4_atom_writes_them() {
        let t = Tfhd {
            track_id: 9,
            base_data_offset: Some(1 << 40),
            sample_description_index: Some(1),
            default_sample_duration: Some(512),
            default_sample_size: None,
            default_sample_flags: Some(0x0101_0000),
            ..Default::default()
        };
        let got = with_box(&t, |src, h, end| tfhd(src, h, end).unwrap());
        assert_eq!(got.track_id, 9);
        assert_eq!(got.base_data_offset, Some(1 << 40));
        assert_eq!(got.default_duration, Some(512));
        assert_eq!(got.default_size, None);
        assert_eq!(got.default_flags, Some(0x0101_0000));
        for dts in [7, 1 << 40] {
            let t = Tfdt {
                base_media_decode_time: dts,
            };
            assert_eq!(with_box(&t, |src, h, end| tfdt(src, h, end).unwrap()), dts);
        }
    }

    fn mp4a(version: u16, esds: &[u8]) -> Vec<u8> {
        let mut e = vec![0u8; 6];
        e.extend_from_slice(&1u16.to_be_bytes());
        e.extend_from_slice(&version.to_be_bytes());
        e.extend_from_slice(&[0; 18]);
        e.extend_from_slice(
            &[0; 16][..match version {
                1 => 16,
                _ => 0,
            }],
        );
        let mut b = ((e.len() + 8 + esds.len()) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(b"mp4a");
        b.extend_from_slice(&e);
        b.extend_from_slice(esds);
        let mut stsd = vec![0, 0, 0, 0, 0, 0, 0, 1];
        stsd.extend_from_slice(&b);
        stsd
    }

    fn esds(descriptors: &[u8]) -> Vec<u8> {
        let mut b = ((12 + descriptors.len()) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(b"esds\0\0\0\0");
        b.extend_from_slice(descriptors);
        b
    }

    #[test]
    fn mp4a_is_aac_or_mp3_by_its_object_type_and_hostile_sizes_are_harmless() {
        // ES_Descriptor (3) with ES_ID 1, no flags, holding a DecoderConfigDescriptor (4).
        let mp3 = esds(&[3, 0x80, 0x80, 0x80, 6, 0, 1, 0, 4, 1, 0x6B]);
        // The same with an OCR stream id (flag 0x20) before it, and MPEG-2 audio.
        let mp3_ocr = esds(&[3, 8, 0, 1, 0x20, 0, 2, 4, 1, 0x69]);
        let aac = esds(&[3, 6, 0, 1, 0, 4, 1, 0x40]);
        let codec = |stsd: &[u8]| sample_entry(stsd, false).codec;
        assert_eq!(codec(&mp4a(0, &mp3)).as_deref(), Some("mp3"));
        assert_eq!(codec(&mp4a(1, &mp3)).as_deref(), Some("mp3"));
        assert_eq!(codec(&mp4a(0, &mp3_ocr)).as_deref(), Some("mp3"));
        assert_eq!(codec(&mp4a(0, &aac)).as_deref(), Some("aac"));
        for bad in [
            esds(&[3, 0xFF, 0xFF, 0xFF, 0x7F, 0, 1, 0, 4, 1, 0x6B]),
            esds(&[3, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
            esds(&[3, 4, 0, 1, 0x40, 0xFF]),
            esds(&[]),
        ] {
            assert_eq!(codec(&mp4a(0, &bad)).as_deref(), Some("aac"));
        }
        assert_eq!(sample_entry(&[0, 0, 0], false), SampleEntry::default());
    }
}
