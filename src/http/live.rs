//! Live view (SPEC §4.1 `live.mp4`): the segment being written, tailed as the recorder writes
//! it, sent as one endless fragmented MP4 that runs on across segment roll-over.
//!
//! Invariants:
//! - No second connection to the camera: viewers read the recorder's own files.
//! - No polling: one shared inotify instance (on its own thread) watches the folders of the
//!   streams someone is watching and bumps a counter per stream; each viewer wakes on that
//!   counter and reads only the fragments added since it last looked ([`media::Tail`]).
//! - A viewer starts at the newest keyframe fragment at media time 0; every later fragment keeps
//!   the time running without a jump, across files, as [`crate::stitch`] does. A new file whose
//!   codec configuration differs ends the response (the player reconnects).
//! - Blocking file work runs on the blocking pool; a viewer that leaves stops its task.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use ntex::util::Bytes;
use tokio::sync::{mpsc, watch};

use crate::error::{Error, Result};
use crate::media::stitch::Timeline;
use crate::media::{self, Fragments};
use crate::time;

/// A viewer gives up when its stream writes nothing for this long (the stream stopped).
const IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// The shared watcher of stream folders.
pub struct Hub {
    watches: Watches,
    state: Arc<Mutex<HubState>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Counts of what happened in a stream's folder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    /// Any write, creation or close.
    pub writes: u64,
    /// Files created or moved in: only then can there be a newer segment.
    pub files: u64,
}

#[derive(Default)]
struct HubState {
    by_wd: HashMap<WatchDescriptor, String>,
    senders: HashMap<String, watch::Sender<Changes>>,
    closed: bool,
}

impl Hub {
    pub fn start() -> Result<Hub> {
        let mut inotify = Inotify::init().map_err(|e| Error::from(e).context("inotify"))?;
        let watches = inotify.watches();
        let state = Arc::new(Mutex::new(HubState::default()));
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name("live".into())
            .spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    let Ok(events) = inotify.read_events_blocking(&mut buf) else {
                        break;
                    };
                    let st = st.lock().unwrap_or_else(|e| e.into_inner());
                    if st.closed {
                        break;
                    }
                    for ev in events {
                        if let Some(tx) = st.by_wd.get(&ev.wd).and_then(|s| st.senders.get(s)) {
                            let new_file =
                                ev.mask.intersects(EventMask::CREATE | EventMask::MOVED_TO);
                            tx.send_modify(|c| {
                                c.writes = c.writes.wrapping_add(1);
                                c.files = c.files.wrapping_add(u64::from(new_file));
                            });
                        }
                    }
                }
            })
            .map_err(|e| Error::internal(format!("live thread: {e}")))?;
        Ok(Hub {
            watches,
            state,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// A counter that moves whenever a file in `dir` (the folder of `stream`) is written,
    /// created or closed.
    pub fn subscribe(&self, stream: &str, dir: &Path) -> Result<watch::Receiver<Changes>> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.closed {
            return Err(Error::not_found("the server is stopping"));
        }
        if let Some(tx) = st.senders.get(stream) {
            return Ok(tx.subscribe());
        }
        let wd = self
            .watches
            .clone()
            .add(
                dir,
                WatchMask::MODIFY
                    | WatchMask::CLOSE_WRITE
                    | WatchMask::CREATE
                    | WatchMask::MOVED_TO,
            )
            .map_err(|e| Error::from(e).context(dir.display()))?;
        let (tx, rx) = watch::channel(Changes::default());
        st.by_wd.insert(wd, stream.to_owned());
        st.senders.insert(stream.to_owned(), tx);
        Ok(rx)
    }

    /// Ends every viewer and the watcher thread.
    pub fn close(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.closed = true;
        // Dropping the senders wakes every viewer, which then ends.
        st.senders.clear();
        for wd in st.by_wd.drain().map(|(wd, _)| wd) {
            let _ = self.watches.clone().remove(wd);
        }
        drop(st);
        // Removing the last watch wakes the thread (IN_IGNORED); with no watch, nothing would.
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take()
            && self
                .watches
                .clone()
                .add(std::env::temp_dir(), WatchMask::ATTRIB)
                .and_then(|wd| self.watches.clone().remove(wd))
                .is_ok()
        {
            let _ = t.join();
        }
    }
}

/// The newest segment file in `dir`.
pub fn newest_segment(dir: &Path) -> Option<(i64, PathBuf)> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let ms = time::parse_segment_name(e.file_name().to_str()?)?;
            Some((ms, e.path()))
        })
        .max_by_key(|(ms, _)| *ms)
}

type Chunk = std::result::Result<Bytes, Arc<std::io::Error>>;

/// The file being tailed and where its fragments go in the output.
struct Current {
    ms: i64,
    path: PathBuf,
    tail: media::Tail,
    /// Per track (in the file's order): its shift into output time, set by the first fragment.
    shift: Option<Vec<(u32, i64)>>,
}

/// The state of one viewer's output: where each track's time has got to.
struct Output {
    codec_key: Option<Vec<u8>>,
    seq: u32,
    pos: u64,
    time: Timeline,
}

/// Sends `stream`'s live video to `tx` until the viewer leaves, the stream stops writing for
/// [`IDLE`], or the hub closes.
pub async fn run(dir: PathBuf, mut changed: watch::Receiver<Changes>, tx: mpsc::Sender<Chunk>) {
    if let Err(e) = tail(&dir, &mut changed, &tx).await {
        log::debug!("live {}: {e}", dir.display());
        let _ = tx.send(Err(Arc::new(std::io::Error::other(e.msg)))).await;
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("live: {e}")))?
}

/// Reads what `cur` gained; moves `cur` back out with the new fragments.
async fn poll_file(mut cur: Current) -> Result<(Current, Option<Fragments>)> {
    blocking(move || {
        let mut f = std::fs::File::open(&cur.path)?;
        let len = f.metadata()?.len();
        let got = cur.tail.next(&mut f, len).unwrap_or(None);
        Ok((cur, got))
    })
    .await
}

async fn tail(
    dir: &Path,
    changed: &mut watch::Receiver<Changes>,
    tx: &mpsc::Sender<Chunk>,
) -> Result<()> {
    let mut out = Output {
        codec_key: None,
        seq: 0,
        pos: 0,
        time: Timeline::new(0),
    };
    let mut cur: Option<Current> = None;
    let mut files_seen = None;
    loop {
        // A newer file than the one being tailed means the recorder rolled over: finish the
        // old one (it is closed by now), then go on with the new one. The folder is listed
        // only when a file was added to it.
        let files = changed.borrow_and_update().files;
        let newest = if files_seen != Some(files) {
            files_seen = Some(files);
            let d = dir.to_owned();
            blocking(move || Ok(newest_segment(&d))).await?
        } else {
            None
        };
        if let Some(c) = cur.take() {
            let (mut c, frags) = poll_file(c).await?;
            send(&mut out, &mut c, frags, tx).await?;
            let rolled = newest.as_ref().is_some_and(|(ms, _)| *ms > c.ms);
            cur = (!rolled).then_some(c);
        }
        if cur.is_none()
            && let Some((ms, path)) = newest
        {
            let c = Current {
                ms,
                path,
                tail: media::Tail::default(),
                shift: None,
            };
            let (mut c, frags) = poll_file(c).await?;
            send(&mut out, &mut c, frags, tx).await?;
            cur = Some(c);
        }
        if tx.is_closed() {
            return Ok(());
        }
        match tokio::time::timeout(IDLE, changed.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Ok(()),
            Err(_) => return Err(Error::not_found("the stream stopped writing")),
        }
    }
}

/// Sends the new fragments of `cur`; the very first ones from the newest keyframe on.
async fn send(
    out: &mut Output,
    cur: &mut Current,
    frags: Option<Fragments>,
    tx: &mpsc::Sender<Chunk>,
) -> Result<()> {
    let Some(f) = frags.filter(|f| !f.frags.is_empty()) else {
        return Ok(());
    };
    let first = out.codec_key.is_none();
    if first {
        // The init segment: the header of the first file.
        let path = cur.path.clone();
        let head_len = f.head_len;
        let head = blocking(move || {
            use std::os::unix::fs::FileExt;
            let file = std::fs::File::open(&path)?;
            let mut buf = vec![0u8; head_len as usize];
            file.read_exact_at(&mut buf, 0)?;
            Ok(buf)
        })
        .await?;
        out.pos = head.len() as u64;
        out.codec_key = Some(f.codec_key.clone());
        out.time = Timeline::new(f.tracks.len());
        if tx.send(Ok(Bytes::from(head))).await.is_err() {
            return Ok(());
        }
    } else if out.codec_key.as_deref() != Some(&f.codec_key[..]) {
        return Err(Error::not_found("the stream's codec parameters changed"));
    }
    let from = if first {
        f.frags.iter().rposition(|x| x.key).unwrap_or(0)
    } else {
        0
    };
    // A file's shift is set by its first fragment and holds for all its later ones.
    let shift = match &cur.shift {
        Some(s) => s.clone(),
        None => out.time.shift(&f, from),
    };
    cur.shift = Some(shift.clone());
    let path = cur.path.clone();
    let batch: Vec<media::Fragment> = f.frags[from..].to_vec();
    let mut seqs = Vec::with_capacity(batch.len());
    let mut positions = Vec::with_capacity(batch.len());
    for (k, fr) in batch.iter().enumerate() {
        out.seq = out.seq.wrapping_add(1);
        seqs.push(out.seq);
        positions.push(out.pos);
        out.pos += fr.size;
        out.time.add(&f, from + k, &shift);
    }
    let data = blocking(move || {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(&path)?;
        let mut chunks = Vec::with_capacity(batch.len());
        for ((fr, seq), pos) in batch.iter().zip(seqs).zip(positions) {
            let mut buf = vec![0u8; fr.size as usize];
            file.read_exact_at(&mut buf, fr.offset)?;
            let moof = fr.moof_len as usize;
            media::rewrite_moof(&mut buf[..moof], seq, pos as i64 - fr.offset as i64, &shift)?;
            chunks.push(Bytes::from(buf));
        }
        Ok(chunks)
    })
    .await?;
    for c in data {
        if tx.send(Ok(c)).await.is_err() {
            break;
        }
    }
    Ok(())
}
