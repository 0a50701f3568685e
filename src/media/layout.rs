//! Virtual files: a response body made of byte ranges from memory and from files, with its size
//! known before the first byte, so it can be served with `Range` and `Content-Length`; and the
//! plan of each read, which runs over consecutive fragments of one file and lists the `moof`s
//! to rewrite in it.

use std::path::PathBuf;

use ntex::util::Bytes;

/// How much of a file is read per step.
pub const CHUNK: usize = 512 * 1024;

#[derive(Debug, Clone)]
pub enum Part {
    Mem(Bytes),
    /// `len` bytes of `files[file]` from `offset`.
    File {
        file: u32,
        offset: u64,
        len: u64,
    },
    /// A fragment of `files[file]` (its `moof` of `moof_len` bytes, then its data), moved to a
    /// new place: its `moof` gets sequence number `seq` and the decode-time shifts of
    /// `edits[edit]`.
    Frag {
        file: u32,
        offset: u64,
        len: u64,
        moof_len: u32,
        seq: u32,
        edit: u32,
    },
}

impl Part {
    fn len(&self) -> u64 {
        match self {
            Part::Mem(b) => b.len() as u64,
            Part::File { len, .. } | Part::Frag { len, .. } => *len,
        }
    }
}

/// The parts of a virtual file, in order, and the files they come from.
#[derive(Debug, Clone)]
pub struct Layout {
    pub files: Vec<PathBuf>,
    /// Per-track decode-time shifts `(track id, ticks)` that fragment parts refer to.
    pub edits: Vec<Vec<(u32, i64)>>,
    parts: Vec<Part>,
    /// Where each part ends in the virtual file.
    ends: Vec<u64>,
}

impl Layout {
    /// About how much memory this holds, for caches bounded in bytes.
    pub fn heap_bytes(&self) -> usize {
        let mem: usize = self
            .parts
            .iter()
            .map(|p| match p {
                Part::Mem(b) => b.len(),
                _ => 0,
            })
            .sum();
        std::mem::size_of::<Self>()
            + self
                .files
                .iter()
                .map(|f| f.as_os_str().len() + 24)
                .sum::<usize>()
            + self.edits.iter().map(|e| e.len() * 16 + 24).sum::<usize>()
            + self.parts.len() * (std::mem::size_of::<Part>() + 8)
            + mem
    }

    pub fn new(files: Vec<PathBuf>, edits: Vec<Vec<(u32, i64)>>, parts: Vec<Part>) -> Layout {
        let mut at = 0u64;
        let ends = parts
            .iter()
            .map(|p| {
                at += p.len();
                at
            })
            .collect();
        Layout {
            files,
            edits,
            parts,
            ends,
        }
    }

    /// The whole of one file of `len` bytes.
    pub fn whole_file(path: PathBuf, len: u64) -> Layout {
        Layout::new(
            vec![path],
            Vec::new(),
            vec![Part::File {
                file: 0,
                offset: 0,
                len,
            }],
        )
    }

    pub fn len(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The part holding byte `pos` and where that part starts.
    pub fn find(&self, pos: u64) -> Option<(&Part, u64)> {
        let i = self.ends.partition_point(|&e| e <= pos);
        let part = self.parts.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some((part, start))
    }
}

/// One read from one file: the bytes `from..to`, where each listed `moof` is rewritten, of which
/// `out` bytes from `skip` are sent. It runs over consecutive parts, so a stitched file is read
/// in big steps like a plain one, not a fragment at a time.
#[derive(Debug, PartialEq, Eq)]
pub struct FileRead {
    pub file: u32,
    pub from: u64,
    pub to: u64,
    pub skip: usize,
    pub out: usize,
    pub moofs: Vec<MoofEdit>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct MoofEdit {
    /// Where it is in the read.
    pub at: usize,
    pub len: usize,
    pub seq: u32,
    pub data_shift: i64,
    pub edit: u32,
}

/// Plans the read of up to [`CHUNK`] bytes of `layout` from `pos` (not in a memory part),
/// stopping before `end`, a memory part, another file or a jump within the file.
pub fn plan_read(layout: &Layout, pos: u64, end: u64) -> Option<FileRead> {
    let (part, start) = layout.find(pos)?;
    let within = pos - start;
    let (file, offset) = match *part {
        Part::File { file, offset, .. } | Part::Frag { file, offset, .. } => (file, offset),
        Part::Mem(_) => return None,
    };
    // A read that starts inside a moof reads it whole, to rewrite it, and skips its start.
    let (from, skip) = match *part {
        Part::Frag { moof_len, .. } if within < u64::from(moof_len) => (offset, within as usize),
        _ => (offset + within, 0),
    };
    let mut read = FileRead {
        file,
        from,
        to: offset + within,
        skip,
        out: 0,
        moofs: Vec::new(),
    };
    let mut at = pos;
    while at < end && read.out < CHUNK {
        let Some((part, start)) = layout.find(at) else {
            break;
        };
        let within = at - start;
        let (this_file, offset) = match *part {
            Part::File { file, offset, .. } | Part::Frag { file, offset, .. } => (file, offset),
            Part::Mem(_) => break,
        };
        if this_file != file || offset + within != read.to {
            break;
        }
        let take = (part.len() - within)
            .min(end - at)
            .min((CHUNK - read.out) as u64);
        let mut to = read.to + take;
        if let Part::Frag {
            moof_len,
            seq,
            edit,
            ..
        } = *part
            && within < u64::from(moof_len)
        {
            read.moofs.push(MoofEdit {
                at: (offset - read.from) as usize,
                len: moof_len as usize,
                seq,
                data_shift: start as i64 - offset as i64,
                edit,
            });
            to = to.max(offset + u64::from(moof_len));
        }
        read.to = to;
        read.out += take as usize;
        at += take;
        if read.to != offset + within + take {
            // The read went on past what is sent (to the end of a cut moof): stop here.
            break;
        }
    }
    Some(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_runs_over_consecutive_fragments_and_rewrites_their_moofs() {
        let frag = |file, offset, len, seq| Part::Frag {
            file,
            offset,
            len,
            moof_len: 10,
            seq,
            edit: 0,
        };
        let l = Layout::new(
            vec![],
            vec![],
            vec![
                Part::Mem(Bytes::from_static(b"head")),
                frag(0, 100, 50, 1),
                frag(0, 150, 60, 2),
                frag(0, 500, 40, 3),
                frag(1, 0, 40, 4),
            ],
        );
        // From inside the first moof: it is read whole, its start skipped; the read stops
        // where the file jumps.
        let r = plan_read(&l, 4 + 5, l.len()).unwrap();
        assert_eq!((r.file, r.from, r.to, r.skip, r.out), (0, 100, 210, 5, 105));
        let at: Vec<(usize, u32, i64)> = r
            .moofs
            .iter()
            .map(|m| (m.at, m.seq, m.data_shift))
            .collect();
        assert_eq!(at, [(0, 1, 4 - 100), (50, 2, 54 - 150)]);
        // An end inside a moof still reads all of it, and sends only what was asked.
        let r = plan_read(&l, 4 + 50, 4 + 53).unwrap();
        assert_eq!(
            (r.from, r.to, r.skip, r.out, r.moofs.len()),
            (150, 160, 0, 3, 1)
        );
        // Past the moof: plain data.
        let r = plan_read(&l, 4 + 20, 4 + 30).unwrap();
        assert_eq!(
            (r.from, r.to, r.skip, r.out, r.moofs.len()),
            (120, 130, 0, 10, 0)
        );
        assert_eq!(plan_read(&l, 0, l.len()), None);
        let r = plan_read(&l, 4 + 150, l.len()).unwrap();
        assert_eq!((r.file, r.from, r.out), (1, 0, 40));
    }

    #[test]
    fn parts_are_found_by_position() {
        let l = Layout::new(
            vec![],
            vec![],
            vec![
                Part::Mem(Bytes::from_static(b"abc")),
                Part::Mem(Bytes::new()),
                Part::Mem(Bytes::from_static(b"de")),
            ],
        );
        assert_eq!(l.len(), 5);
        let at = |pos| l.find(pos).map(|(p, s)| (p.len(), s));
        assert_eq!(at(0), Some((3, 0)));
        assert_eq!(at(2), Some((3, 0)));
        assert_eq!(at(3), Some((2, 3)));
        assert_eq!(at(4), Some((2, 3)));
        assert_eq!(at(5), None);
    }
}
