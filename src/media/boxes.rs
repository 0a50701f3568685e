//! Bounded reading of MP4 box trees from untrusted bytes.
//!
//! Invariants:
//! - Nothing here allocates in proportion to a number read from the file. Bytes are read
//!   through one fixed [`WINDOW`]; the only body read whole is a sample description (`stsd`),
//!   capped at [`MAX_STSD`]. A probe therefore allocates at most [`PROBE_BUDGET`] bytes,
//!   whatever the file says.
//! - Every count is checked against the bytes of its box before it is used, and a loop over
//!   per-entry data runs only over entries that exist in the file.
//! - Only the leaves the probe needs are read (`mvhd`, `tkhd`, `mdhd`, `hdlr`, `stsd`, `trex`,
//!   `tfhd`, `tfdt`, `trun`); every other box (sample tables, sample groups, user data…) is
//!   skipped by its size, unread.
//! - A container has at most [`MAX_CHILDREN`] children, so a crafted box cannot make a walk
//!   take long either.

use std::io::{Read, Seek, SeekFrom};

use crate::error::{Error, Result};

/// The bytes read from the file at once: headers, leaves and `trun` entries come through it.
pub const WINDOW: usize = 4096;
/// The largest sample description (`stsd`) read: a camera's is a few hundred bytes.
pub const MAX_STSD: u64 = 64 << 10;
/// The most tracks a file may have: a camera's segment has one to three.
pub const MAX_TRACKS: usize = 16;
/// The most children one box may have: real files have a handful.
pub const MAX_CHILDREN: usize = 1024;
/// An upper bound on what one probe allocates: the window and every track's description.
pub const PROBE_BUDGET: u64 = WINDOW as u64 + MAX_TRACKS as u64 * (MAX_STSD + 256);

/// One box's place in the file.
#[derive(Debug, Clone, Copy)]
pub struct BoxHeader {
    pub kind: [u8; 4],
    pub start: u64,
    pub body: u64,
    /// `None` when the box claims to run past the end of what may be read.
    pub end: Option<u64>,
}

impl BoxHeader {
    pub fn name(&self) -> String {
        fourcc(&self.kind)
    }
}

/// The first `len` bytes of a reader, read through one small window.
pub struct Source<'r, R> {
    r: &'r mut R,
    pub len: u64,
    win_at: u64,
    win: Vec<u8>,
}

impl<'r, R: Read + Seek> Source<'r, R> {
    pub fn new(r: &'r mut R, len: u64) -> Self {
        Source {
            r,
            len,
            win_at: 0,
            win: Vec::new(),
        }
    }

    /// Fills `out` from offset `at`, which must lie within the first `len` bytes.
    pub fn read_at(&mut self, at: u64, out: &mut [u8]) -> Result<()> {
        let n = out.len() as u64;
        if at.checked_add(n).is_none_or(|e| e > self.len) {
            return Err(Error::corrupt(format!("read past the end at byte {at}")));
        }
        let win_end = self.win_at + self.win.len() as u64;
        if at >= self.win_at && at + n <= win_end {
            let from = (at - self.win_at) as usize;
            out.copy_from_slice(&self.win[from..from + out.len()]);
            return Ok(());
        }
        self.r.seek(SeekFrom::Start(at))?;
        if out.len() >= WINDOW {
            self.r.read_exact(out)?;
            return Ok(());
        }
        let fill = (self.len - at).min(WINDOW as u64) as usize;
        self.win.resize(fill, 0);
        self.win_at = at;
        if let Err(e) = self.r.read_exact(&mut self.win) {
            self.win.clear();
            return Err(e.into());
        }
        out.copy_from_slice(&self.win[..out.len()]);
        Ok(())
    }

    pub fn u32_at(&mut self, at: u64) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read_at(at, &mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    /// The header of the box at `at`, which must end by `limit`. `Ok(None)` when `limit`
    /// comes inside the header itself.
    pub fn header(&mut self, at: u64, limit: u64) -> Result<Option<BoxHeader>> {
        if limit.saturating_sub(at) < 8 {
            return Ok(None);
        }
        let mut h = [0u8; 8];
        self.read_at(at, &mut h)?;
        let kind: [u8; 4] = [h[4], h[5], h[6], h[7]];
        if !kind.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
            return Err(Error::corrupt(format!("no MP4 box at byte {at}")));
        }
        let (size, body) = match u32::from_be_bytes([h[0], h[1], h[2], h[3]]) {
            0 => (limit - at, at + 8),
            1 => {
                if limit - at < 16 {
                    return Ok(None);
                }
                let mut b = [0u8; 8];
                self.read_at(at + 8, &mut b)?;
                (u64::from_be_bytes(b), at + 16)
            }
            n => (u64::from(n), at + 8),
        };
        if size < body - at {
            return Err(Error::corrupt(format!(
                "box {} at byte {at} has a bad size {size}",
                fourcc(&kind)
            )));
        }
        let end = at.checked_add(size).filter(|&e| e <= limit);
        Ok(Some(BoxHeader {
            kind,
            start: at,
            body,
            end,
        }))
    }

    /// Reads the first `N` bytes of a leaf's body; a shorter body is an error.
    pub fn leaf<const N: usize>(&mut self, h: &BoxHeader, end: u64) -> Result<[u8; N]> {
        if end - h.body < N as u64 {
            return Err(Error::corrupt(format!(
                "{} box at byte {} is too short",
                h.name(),
                h.start
            )));
        }
        let mut b = [0u8; N];
        self.read_at(h.body, &mut b)?;
        Ok(b)
    }

    /// Reads a whole body of at most `cap` bytes.
    pub fn body(&mut self, h: &BoxHeader, end: u64, cap: u64) -> Result<Vec<u8>> {
        let n = end - h.body;
        if n > cap {
            return Err(Error::corrupt(format!(
                "{} box of {n} bytes is larger than {cap}",
                h.name()
            )));
        }
        let mut buf = vec![0u8; n as usize];
        self.read_at(h.body, &mut buf)?;
        Ok(buf)
    }
}

/// Walks the children of a box whose body is `[at, end)`, by reading their headers.
pub struct Children {
    at: u64,
    end: u64,
    seen: usize,
    parent: [u8; 4],
}

impl Children {
    pub fn of(h: &BoxHeader, end: u64) -> Self {
        Children {
            at: h.body,
            end,
            seen: 0,
            parent: h.kind,
        }
    }

    /// The next child and where it ends. Trailing bytes too few for a header are ignored, as
    /// players do; a child that runs past its parent is an error.
    pub fn next<R: Read + Seek>(
        &mut self,
        src: &mut Source<'_, R>,
    ) -> Result<Option<(BoxHeader, u64)>> {
        let Some(h) = src.header(self.at, self.end)? else {
            return Ok(None);
        };
        self.seen += 1;
        if self.seen > MAX_CHILDREN {
            return Err(Error::corrupt(format!(
                "{} box has more than {MAX_CHILDREN} children",
                fourcc(&self.parent)
            )));
        }
        let end = h.end.ok_or_else(|| {
            Error::corrupt(format!(
                "{} box at byte {} runs past its {} box",
                h.name(),
                h.start,
                fourcc(&self.parent)
            ))
        })?;
        self.at = end;
        Ok(Some((h, end)))
    }
}

/// The box at `at` in `b[..to]`, as `(kind, body start, end)`; `None` when fewer than 8 bytes
/// are left; an error when its size is bad.
pub fn span(b: &[u8], at: usize, to: usize) -> Result<Option<([u8; 4], usize, usize)>> {
    let Some(h) = b.get(at..to).filter(|r| r.len() >= 8) else {
        return Ok(None);
    };
    let size = match be32(h) {
        0 => h.len(),
        n => usize::try_from(n).unwrap_or(usize::MAX),
    };
    if size < 8 || size > h.len() {
        return Err(Error::corrupt(format!("a box at byte {at} has a bad size")));
    }
    Ok(Some(([h[4], h[5], h[6], h[7]], at + 8, at + size)))
}

/// The child boxes of an in-memory body, as `(kind, body)`; stops at the first malformed one
/// or after [`MAX_CHILDREN`].
pub fn children(b: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let (kind, body, end) = span(b, at, b.len()).ok()??;
        at = end;
        Some((kind, &b[body..end]))
    })
    .take(MAX_CHILDREN)
}

pub fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

pub fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// A fourcc as text, with anything unprintable shown as `?`.
pub fn fourcc(k: &[u8; 4]) -> String {
    k.iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_stop_at_a_bad_size_and_span_says_why() {
        let mut b = vec![0, 0, 0, 8, b'f', b'r', b'e', b'e'];
        b.extend_from_slice(&[0, 0, 0, 9, b'f', b'r', b'e', b'e']);
        assert_eq!(children(&b).count(), 1);
        assert!(span(&b, 8, b.len()).is_err());
        assert_eq!(span(&b, 0, 7).unwrap(), None);
        // A size of 0 runs to the end.
        let z = [0, 0, 0, 0, b'm', b'd', b'a', b't', 1, 2];
        assert_eq!(span(&z, 0, z.len()).unwrap(), Some((*b"mdat", 8, 10)));
        let many: Vec<u8> = (0..5000)
            .flat_map(|_| [0, 0, 0, 8, b'f', b'r', b'e', b'e'])
            .collect();
        assert_eq!(children(&many).count(), MAX_CHILDREN);
    }

    #[test]
    fn the_probe_budget_is_small() {
        const { assert!(PROBE_BUDGET < 2 << 20) };
    }
}
