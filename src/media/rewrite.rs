//! Moving a fragment to a new place in a new file, in place: the `moof` is rewritten with every
//! field keeping its width, so sizes and offsets never depend on the rewrite.

use super::boxes;
use crate::error::{Error, Result};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
