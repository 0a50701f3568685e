//! Virtual files: a response body made of byte ranges from memory and from one file, with its
//! size known before the first byte, so it can be served with `Range` and `Content-Length`.
//!
//! Invariants: file data is read a chunk at a time on tokio's blocking pool, never held whole
//! and never read on the executor; the open file keeps its data readable even if the file is
//! deleted while it streams.

use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use ntex::util::{Bytes, Stream};
use std::future::Future;

/// How much of a file is read per step.
const CHUNK: usize = 512 * 1024;

#[derive(Debug, Clone)]
pub enum Part {
    Mem(Bytes),
    File { offset: u64, len: u64 },
}

impl Part {
    fn len(&self) -> u64 {
        match self {
            Part::Mem(b) => b.len() as u64,
            Part::File { len, .. } => *len,
        }
    }
}

/// The parts of a virtual file, in order.
#[derive(Debug, Clone)]
pub struct Layout {
    pub parts: Vec<Part>,
}

impl Layout {
    pub fn len(&self) -> u64 {
        self.parts.iter().map(Part::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole of a file of `len` bytes.
    pub fn whole_file(len: u64) -> Layout {
        Layout {
            parts: vec![Part::File { offset: 0, len }],
        }
    }
}

/// Bytes `start..end` of `layout`, with file parts read from `file`.
pub struct Body {
    file: Arc<std::fs::File>,
    layout: Arc<Layout>,
    pos: u64,
    end: u64,
    /// The read in flight on the blocking pool, straight into the buffer that is then sent:
    /// one copy from the page cache, none in between.
    reading: Option<tokio::task::JoinHandle<std::io::Result<Vec<u8>>>>,
}

impl Body {
    pub fn new(file: std::fs::File, layout: Arc<Layout>, start: u64, end: u64) -> Body {
        Body {
            file: Arc::new(file),
            layout,
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
                Ok(Ok(buf)) if buf.is_empty() => {
                    // The file shrank under us: end the response (the connection closes).
                    err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file ended early",
                    ))
                }
                Ok(Ok(buf)) => {
                    this.pos += buf.len() as u64;
                    Poll::Ready(Some(Ok(Bytes::from(buf))))
                }
            };
        }
        if this.pos >= this.end {
            return Poll::Ready(None);
        }
        // The part holding `pos`.
        let mut part_start = 0u64;
        let mut found = None;
        for p in &this.layout.parts {
            let l = p.len();
            if this.pos < part_start + l {
                found = Some(p.clone());
                break;
            }
            part_start += l;
        }
        let Some(part) = found else {
            return Poll::Ready(None);
        };
        let within = this.pos - part_start;
        let take_max = (part.len() - within).min(this.end - this.pos);
        match part {
            Part::Mem(b) => {
                let s = within as usize;
                let chunk = b.slice(s..s + take_max as usize);
                this.pos += take_max;
                Poll::Ready(Some(Ok(chunk)))
            }
            Part::File { offset, .. } => {
                let at = offset + within;
                let n = take_max.min(CHUNK as u64) as usize;
                let file = this.file.clone();
                this.reading = Some(tokio::task::spawn_blocking(move || {
                    use std::os::unix::fs::FileExt;
                    let mut buf = vec![0u8; n];
                    let got = file.read_at(&mut buf, at)?;
                    buf.truncate(got);
                    Ok(buf)
                }));
                // Poll the read at once, so this task is woken when it is done.
                self.poll_next(cx)
            }
        }
    }
}
