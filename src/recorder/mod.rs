//! The recorder: one supervised ffmpeg per enabled stream, codec copy into fragmented-MP4
//! segments, and the live application of config changes.
//!
//! Invariants:
//! - ffmpeg never transcodes video; it writes `{recordings_dir}/{stream}/%Y-%m-%d_%H-%M-%S.mp4`
//!   with `TZ=UTC`, so file names are UTC. Audio is copied, or converted to AAC only when the
//!   source's codec cannot go into MP4 (`audio = "auto"`).
//! - Each ffmpeg runs in its own process group and gets SIGKILL when the daemon dies
//!   (`PR_SET_PDEATHSIG`). The death signal follows the thread that forked, so every ffmpeg is
//!   forked from the recorder's one long-lived runtime thread, which outlives its children.
//! - Stopping sends SIGINT first so ffmpeg finishes its file, then SIGKILL after a grace period.
//! - A stream whose files stop growing is stalled: its ffmpeg is replaced. Every exit, stall or
//!   failed start is followed by a restart after an exponential backoff.
//! - The recorder never waits on the index.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inotify::{EventMask, Inotify, WatchMask};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep, sleep_until, timeout};

use crate::config::AudioMode;
use crate::daemon::watchdog::{self, Heartbeat};
use crate::error::{Error, Result};
use crate::time;

mod ffmpeg;
mod status;
pub mod tools;

pub use ffmpeg::{SEGMENT_MOVFLAGS, Source, StreamSpec, ffmpeg_args, segment_output_args};
use ffmpeg::{exit_reason, needs_audio_transcode, rtsp_host_port, spawn_ffmpeg, stop_child};
use status::update;
pub use status::{Backoff, OnGrowth, State, Status, Statuses};

/// How long ffmpeg gets to finish its file after SIGINT.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// The same for a stalled ffmpeg, which is usually stuck in a read that SIGINT cannot end.
const STALL_GRACE: Duration = Duration::from_secs(2);
/// During a backoff, how often an unreachable source is checked with a TCP connect.
const REACHABLE_CHECK: Duration = Duration::from_secs(1);
/// A stream whose files have not grown for this long is stalled.
const STALL_AFTER: Duration = Duration::from_secs(15);
/// How often the files' growth is looked at (the kernel queues the events in between).
const GROWTH_CHECK: Duration = Duration::from_secs(2);

enum Command_ {
    Apply(Vec<StreamSpec>, Vec<String>),
    Stop,
}

/// The handle of the recorder thread.
pub struct Recorder {
    tx: mpsc::UnboundedSender<Command_>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Recorder {
    /// Starts the recorder thread recording `specs`; `disabled` streams are only listed.
    /// `on_growth` is called (at most every couple of seconds per stream) while files grow.
    pub fn spawn(
        specs: Vec<StreamSpec>,
        disabled: Vec<String>,
        statuses: Statuses,
        on_growth: OnGrowth,
        beat: Heartbeat,
    ) -> Result<Recorder> {
        let (tx, rx) = mpsc::unbounded_channel();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::internal(format!("recorder runtime: {e}")))?;
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || {
                rt.block_on(async move {
                    // The supervisor's heartbeat: it stops if this runtime thread hangs.
                    tokio::spawn(async move {
                        loop {
                            beat.beat();
                            watchdog::hang_if_faulted("recorder");
                            sleep(watchdog::BEAT).await;
                        }
                    });
                    run(rx, statuses, on_growth).await
                })
            })
            .map_err(|e| Error::internal(format!("recorder thread: {e}")))?;
        let r = Recorder {
            tx,
            thread: Some(thread),
        };
        r.apply(specs, disabled);
        Ok(r)
    }

    /// Brings the running recorders in line with `specs`: new ones start, gone ones stop,
    /// changed ones restart, the rest record on untouched.
    pub fn apply(&self, specs: Vec<StreamSpec>, disabled: Vec<String>) {
        let _ = self.tx.send(Command_::Apply(specs, disabled));
    }

    /// Stops every ffmpeg gracefully and waits for them.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        let _ = self.tx.send(Command_::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

struct Running {
    spec: StreamSpec,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn run(mut rx: mpsc::UnboundedReceiver<Command_>, statuses: Statuses, on_growth: OnGrowth) {
    let mut running: HashMap<String, Running> = HashMap::new();
    while let Some(cmd) = rx.recv().await {
        // An apply with no streams at all (a box with no cameras yet) is not a stop: later
        // applies must still start what is added.
        let stopping = matches!(cmd, Command_::Stop);
        let (specs, disabled) = match cmd {
            Command_::Apply(specs, disabled) => (specs, disabled),
            Command_::Stop => (Vec::new(), Vec::new()),
        };
        let mut to_stop = Vec::new();
        for (id, r) in running.iter() {
            if !specs.contains(&r.spec) {
                to_stop.push(id.clone());
            }
        }
        let mut stopped = Vec::new();
        for id in to_stop {
            if let Some(r) = running.remove(&id) {
                log::info!("{id}: stopping recorder");
                let _ = r.stop.send(true);
                stopped.push(r.task);
            }
        }
        for t in stopped {
            let _ = t.await;
        }
        {
            let mut all = statuses.lock().unwrap_or_else(|e| e.into_inner());
            all.retain(|id, _| specs.iter().any(|s| &s.id == id) || disabled.contains(id));
            for id in &disabled {
                let s = all.entry(id.clone()).or_insert(Status {
                    state: State::Disabled,
                    restarts: 0,
                    last_error: None,
                    last_segment_ms: None,
                });
                s.state = State::Disabled;
            }
        }
        for spec in specs {
            if running.contains_key(&spec.id) {
                continue;
            }
            let (stop_tx, stop_rx) = watch::channel(false);
            let task = tokio::spawn(supervise(
                spec.clone(),
                statuses.clone(),
                stop_rx,
                on_growth.clone(),
            ));
            running.insert(
                spec.id.clone(),
                Running {
                    spec,
                    stop: stop_tx,
                    task,
                },
            );
        }
        if stopping {
            break;
        }
    }
    for (_, r) in running.drain() {
        let _ = r.stop.send(true);
        let _ = r.task.await;
    }
}

enum Outcome {
    Stopped,
    Exited(String),
}

/// Keeps one stream recording until told to stop.
async fn supervise(
    spec: StreamSpec,
    statuses: Statuses,
    mut stop: watch::Receiver<bool>,
    on_growth: OnGrowth,
) {
    let id = spec.id.clone();
    let newest = newest_segment(&spec.dir);
    update(&statuses, &id, |s| {
        s.state = State::Starting;
        s.last_segment_ms = s.last_segment_ms.or(newest);
    });
    let mut backoff = Backoff::new(
        Duration::from_secs(1),
        Duration::from_secs(60),
        Duration::from_secs(60),
    );
    let transcode = Arc::new(AtomicBool::new(false));
    loop {
        let started = Instant::now();
        update(&statuses, &id, |s| s.state = State::Starting);
        let outcome = match record_once(&spec, &statuses, &mut stop, &transcode, &on_growth).await {
            Ok(o) => o,
            Err(e) => Outcome::Exited(e.to_string()),
        };
        let why = match outcome {
            Outcome::Stopped => break,
            Outcome::Exited(why) => crate::auth::secret::redact_credentials(&why),
        };
        let wait = backoff.after_run(started.elapsed());
        log::warn!("{id}: {why}; restarting in {wait:?}");
        update(&statuses, &id, |s| {
            s.state = State::Backoff;
            s.restarts += 1;
            s.last_error = Some(why);
        });
        tokio::select! {
            _ = wait_for_source(&spec.source, wait) => {}
            _ = stop.changed() => break,
        }
    }
    update(&statuses, &id, |s| s.state = State::Stopped);
}

/// Waits out a backoff of `wait`, but ends it early when an RTSP source that was unreachable
/// (a camera rebooting, go2rtc restarting) accepts connections again, so the only gap in the
/// footage is the outage. A reachable source that failed gets the whole backoff.
async fn wait_for_source(source: &Source, wait: Duration) {
    let deadline = Instant::now() + wait;
    let Some(addr) = rtsp_host_port(source) else {
        sleep_until(deadline).await;
        return;
    };
    let mut was_down = false;
    while Instant::now() < deadline {
        let up = matches!(
            timeout(
                REACHABLE_CHECK,
                tokio::net::TcpStream::connect(addr.as_str())
            )
            .await,
            Ok(Ok(_))
        );
        if up && was_down {
            return;
        }
        was_down |= !up;
        sleep_until(deadline.min(Instant::now() + REACHABLE_CHECK)).await;
    }
}

fn newest_segment(dir: &Path) -> Option<i64> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()
                .and_then(time::parse_segment_name)
        })
        .max()
}

/// Runs one ffmpeg until it exits, stalls, or the stream is stopped.
async fn record_once(
    spec: &StreamSpec,
    statuses: &Statuses,
    stop: &mut watch::Receiver<bool>,
    transcode: &Arc<AtomicBool>,
    on_growth: &OnGrowth,
) -> Result<Outcome> {
    if *stop.borrow() {
        return Ok(Outcome::Stopped);
    }
    // The segment muxer does not create the folder.
    std::fs::create_dir_all(&spec.dir).map_err(|e| Error::from(e).context(spec.dir.display()))?;
    let mut growth = Inotify::init().map_err(|e| Error::from(e).context("inotify"))?;
    growth
        .watches()
        .add(&spec.dir, WatchMask::MODIFY | WatchMask::CREATE)
        .map_err(|e| Error::from(e).context(spec.dir.display()))?;

    let mut child = spawn_ffmpeg(spec, transcode.load(Ordering::Relaxed))?;
    log::info!(
        "{}: recording (ffmpeg pid {})",
        spec.id,
        child.id().unwrap_or(0)
    );
    let last_line = Arc::new(Mutex::new((String::new(), Instant::now())));
    if let Some(stderr) = child.stderr.take() {
        let (id, last, transcode) = (spec.id.clone(), last_line.clone(), transcode.clone());
        let audio_auto = spec.audio == AudioMode::Auto;
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let line = crate::auth::secret::redact_credentials(&line);
                log::warn!("{id}: ffmpeg: {line}");
                if audio_auto && needs_audio_transcode(&line) {
                    transcode.store(true, Ordering::Relaxed);
                }
                *last.lock().unwrap_or_else(|e| e.into_inner()) = (line, Instant::now());
            }
        });
    }

    let mut buf = [0u8; 4096];
    let mut last_growth = Instant::now();
    let mut next_check = Instant::now() + GROWTH_CHECK;
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status.map_err(|e| Error::from(e).context("waiting for ffmpeg"))?;
                // Let the stderr task catch up with ffmpeg's last words.
                sleep(Duration::from_millis(50)).await;
                let (line, at) = last_line.lock().unwrap_or_else(|e| e.into_inner()).clone();
                // Only ffmpeg's last words explain its exit, not a warning from long ago.
                let line = if at.elapsed() < Duration::from_secs(3) { line } else { String::new() };
                return Ok(Outcome::Exited(exit_reason(status, &line)));
            }
            _ = stop.changed() => {
                stop_child(&spec.id, &mut child, STOP_GRACE).await;
                return Ok(Outcome::Stopped);
            }
            _ = sleep_until(next_check) => {
                let (grew, newest) = drain_growth(&mut growth, &mut buf);
                if grew {
                    on_growth();
                    last_growth = Instant::now();
                    update(statuses, &spec.id, |s| {
                        s.state = State::Recording;
                        if newest.is_some() {
                            s.last_segment_ms = newest.max(s.last_segment_ms);
                        }
                    });
                } else if last_growth.elapsed() >= STALL_AFTER {
                    stop_child(&spec.id, &mut child, STALL_GRACE).await;
                    return Ok(Outcome::Exited(format!("stalled: no new data for {} s", STALL_AFTER.as_secs())));
                }
                next_check = Instant::now() + GROWTH_CHECK;
            }
        }
    }
}

/// Whether any file in the folder grew since the last call, and the newest segment created.
fn drain_growth(inotify: &mut Inotify, buf: &mut [u8]) -> (bool, Option<i64>) {
    let mut grew = false;
    let mut newest = None;
    loop {
        // Non-blocking: `Inotify::init` opens the fd with IN_NONBLOCK.
        let Ok(events) = inotify.read_events(buf) else {
            break;
        };
        let mut any = false;
        for ev in events {
            any = true;
            grew = true;
            if ev.mask.contains(EventMask::CREATE) {
                newest = newest.max(
                    ev.name
                        .and_then(|n| n.to_str())
                        .and_then(time::parse_segment_name),
                );
            }
        }
        if !any {
            break;
        }
    }
    (grew, newest)
}
