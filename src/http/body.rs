//! The response body of a virtual file ([`Layout`]): its bytes `start..end`, streamed.
//!
//! Invariants:
//! - File data is read a chunk at a time on tokio's blocking pool, never held whole and never
//!   read on the executor.
//! - A body keeps the file it is reading open, so a file deleted while it streams still
//!   finishes; the next file is opened only when the body reaches it.
//! - A fragment part's `moof` is rewritten as it is read ([`media::rewrite_moof`]), in place and
//!   with every field keeping its width, so part sizes never depend on the rewrite.

use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use ntex::util::{Bytes, Stream};
use std::future::Future;

use crate::media::{
    self,
    layout::{Layout, Part, plan_read},
};

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
        let Some((first, first_start)) = this.layout.find(this.pos) else {
            return Poll::Ready(None);
        };
        if let Part::Mem(b) = first {
            let s = (this.pos - first_start) as usize;
            let take = (b.len() - s).min((this.end - this.pos) as usize);
            this.pos += take as u64;
            return Poll::Ready(Some(Ok(b.slice(s..s + take))));
        }
        let Some(read) = plan_read(&this.layout, this.pos, this.end) else {
            return Poll::Ready(None);
        };
        let open = this.open.clone().filter(|(i, _)| *i == read.file);
        let path = this.layout.files.get(read.file as usize).cloned();
        let layout = this.layout.clone();
        this.reading = Some(tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let file = match open {
                Some((_, f)) => f,
                None => {
                    let path = path.ok_or_else(|| std::io::Error::other("no such file part"))?;
                    Arc::new(std::fs::File::open(path)?)
                }
            };
            let mut buf = vec![0u8; (read.to - read.from) as usize];
            let mut got = 0;
            while got < buf.len() {
                let k = file.read_at(&mut buf[got..], read.from + got as u64)?;
                if k == 0 {
                    // The file shrank under us.
                    return Ok((read.file, file, Vec::new()));
                }
                got += k;
            }
            for m in &read.moofs {
                let shift = layout
                    .edits
                    .get(m.edit as usize)
                    .map_or(&[][..], Vec::as_slice);
                media::rewrite_moof(&mut buf[m.at..m.at + m.len], m.seq, m.data_shift, shift)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.msg))?;
            }
            if read.skip > 0 || read.out < buf.len() {
                buf = buf[read.skip..read.skip + read.out].to_vec();
            }
            Ok((read.file, file, buf))
        }));
        // Poll the read at once, so this task is woken when it is done.
        self.poll_next(cx)
    }
}
