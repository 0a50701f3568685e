//! Virtual files: a response body made of byte ranges from memory and from files, with its size
//! known before the first byte, so it can be served with `Range` and `Content-Length`.
//!
//! Invariants:
//! - File data is read a chunk at a time on tokio's blocking pool, never held whole and never
//!   read on the executor.
//! - A body keeps the file it is reading open, so a file deleted while it streams still
//!   finishes; the next file is opened only when the body reaches it.
//! - A fragment part's `moof` is rewritten as it is read ([`mp4::rewrite_moof`]), in place and
//!   with every field keeping its width, so part sizes never depend on the rewrite.

use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use ntex::util::{Bytes, Stream};
use std::future::Future;

use crate::mp4;

/// How much of a file is read per step.
const CHUNK: usize = 512 * 1024;

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
    fn find(&self, pos: u64) -> Option<(&Part, u64)> {
        let i = self.ends.partition_point(|&e| e <= pos);
        let part = self.parts.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some((part, start))
    }
}

type Read = std::io::Result<(u32, Arc<std::fs::File>, Vec<u8>)>;

/// Bytes `start..end` of `layout`.
pub struct Body {
    layout: Arc<Layout>,
    /// The file last read, by index into `layout.files`.
    open: Option<(u32, Arc<std::fs::File>)>,
    pos: u64,
    end: u64,
    /// The read in flight on the blocking pool, straight into the buffer that is then sent.
    reading: Option<tokio::task::JoinHandle<Read>>,
}

impl Body {
    /// `open` may hold the already opened first file (index 0), so a file that exists when the
    /// request is answered is the file that is served.
    pub fn new(layout: Arc<Layout>, start: u64, end: u64, open: Option<std::fs::File>) -> Body {
        Body {
            layout,
            open: open.map(|f| (0, Arc::new(f))),
            pos: start,
            end,
            reading: None,
        }
    }
}

type Item = Result<Bytes, Rc<dyn std::error::Error>>;

fn err(e: std::io::Error) -> Poll<Option<Item>> {
    Poll::Ready(Some(Err(Rc::new(e))))
}

impl Stream for Body {
    type Item = Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        let this = &mut *self;
        if let Some(h) = &mut this.reading {
            let done = match Pin::new(h).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r,
            };
            this.reading = None;
            return match done {
                Err(e) => err(std::io::Error::other(e)),
                Ok(Err(e)) => err(e),
                Ok(Ok((_, _, buf))) if buf.is_empty() => {
                    // The file shrank under us: end the response (the connection closes).
                    err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file ended early",
                    ))
                }
                Ok(Ok((index, file, buf))) => {
                    this.open = Some((index, file));
                    this.pos += buf.len() as u64;
                    Poll::Ready(Some(Ok(Bytes::from(buf))))
                }
            };
        }
        if this.pos >= this.end {
            return Poll::Ready(None);
        }
        let Some((part, part_start)) = this.layout.find(this.pos) else {
            return Poll::Ready(None);
        };
        let within = this.pos - part_start;
        let take_max = (part.len() - within).min(this.end - this.pos);
        let (index, at, n, rewrite) = match *part {
            Part::Mem(ref b) => {
                let s = within as usize;
                let chunk = b.slice(s..s + take_max as usize);
                this.pos += take_max;
                return Poll::Ready(Some(Ok(chunk)));
            }
            Part::File { file, offset, .. } => {
                (file, offset + within, take_max.min(CHUNK as u64), None)
            }
            Part::Frag {
                file,
                offset,
                moof_len,
                seq,
                edit,
                ..
            } if within < u64::from(moof_len) => {
                // The whole moof is read and rewritten; only the asked-for end of it is sent.
                let shift = this.layout.edits.get(edit as usize).cloned();
                let data_shift = part_start as i64 - offset as i64;
                (
                    file,
                    offset,
                    u64::from(moof_len),
                    Some((seq, data_shift, shift.unwrap_or_default(), within, take_max)),
                )
            }
            Part::Frag { file, offset, .. } => {
                (file, offset + within, take_max.min(CHUNK as u64), None)
            }
        };
        let open = this.open.clone().filter(|(i, _)| *i == index);
        let path = this.layout.files.get(index as usize).cloned();
        this.reading = Some(tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let file = match open {
                Some((_, f)) => f,
                None => {
                    let path = path.ok_or_else(|| std::io::Error::other("no such file part"))?;
                    Arc::new(std::fs::File::open(path)?)
                }
            };
            let mut buf = vec![0u8; n as usize];
            let mut got = 0;
            while got < buf.len() {
                let k = file.read_at(&mut buf[got..], at + got as u64)?;
                if k == 0 {
                    break;
                }
                got += k;
            }
            buf.truncate(got);
            if let Some((seq, data_shift, shift, within, take)) = rewrite {
                if got < n as usize {
                    return Ok((index, file, Vec::new()));
                }
                mp4::rewrite_moof(&mut buf, seq, data_shift, &shift)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.msg))?;
                let end = (within + take).min(n) as usize;
                buf = buf[within as usize..end].to_vec();
            }
            Ok((index, file, buf))
        }));
        // Poll the read at once, so this task is woken when it is done.
        self.poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
