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

use std::collections::{BTreeMap, HashMap};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inotify::{EventMask, Inotify, WatchMask};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep, sleep_until, timeout};

use crate::config::{AudioMode, Config};
use crate::daemon::watchdog::{self, Heartbeat};
use crate::error::{Error, Result};
use crate::time;

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
/// ffmpeg's own RTSP I/O timeout.
const RTSP_TIMEOUT_US: u64 = 10_000_000;

/// Where a recorder's video comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Rtsp(String),
    /// ffmpeg's own test pattern with a running clock and a tone, encoded to H.264 and AAC.
    TestPattern,
}

/// Everything that decides how one stream is recorded; a change to any of it restarts ffmpeg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    pub id: String,
    pub source: Source,
    pub segment_seconds: u32,
    pub audio: AudioMode,
    pub ffmpeg: String,
    pub dir: PathBuf,
}

impl StreamSpec {
    /// The specs of every enabled stream of `config`, recording from `config`'s URLs, or from
    /// the test pattern when `test_pattern`.
    pub fn from_config(config: &Config, test_pattern: bool) -> Vec<StreamSpec> {
        config
            .streams
            .iter()
            .filter(|s| s.enabled)
            .map(|s| StreamSpec {
                id: s.id.clone(),
                source: if test_pattern {
                    Source::TestPattern
                } else {
                    Source::Rtsp(s.url.clone())
                },
                segment_seconds: s.segment_seconds,
                audio: config.recording.audio,
                ffmpeg: config.recording.ffmpeg_path.clone(),
                dir: config.storage.recordings_dir.join(&s.id),
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Starting,
    Recording,
    Backoff,
    Stopped,
    Disabled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Recording => "recording",
            State::Backoff => "backoff",
            State::Stopped => "stopped",
            State::Disabled => "disabled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub state: State,
    pub restarts: u64,
    pub last_error: Option<String>,
    pub last_segment_ms: Option<i64>,
}

/// Told that recordings grew (retention checks the disk then).
pub type OnGrowth = Arc<dyn Fn() + Send + Sync>;

/// Every stream's recorder status, by stream id; read by the API.
pub type Statuses = Arc<Mutex<BTreeMap<String, Status>>>;

fn update(statuses: &Statuses, id: &str, f: impl FnOnce(&mut Status)) {
    let mut all = statuses.lock().unwrap_or_else(|e| e.into_inner());
    let s = all.entry(id.to_owned()).or_insert(Status {
        state: State::Starting,
        restarts: 0,
        last_error: None,
        last_segment_ms: None,
    });
    f(s);
}

/// Exponential backoff: 1 s, 2 s, 4 s … capped at `max`, back to the start after a run that
/// lasted `stable` or longer.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
    stable: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration, stable: Duration) -> Backoff {
        Backoff {
            next: min,
            min,
            max,
            stable,
        }
    }

    /// The wait before the next start, given how long the last run lasted.
    pub fn after_run(&mut self, ran: Duration) -> Duration {
        if ran >= self.stable {
            self.next = self.min;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }
}

/// The ffmpeg arguments that record `spec`. `transcode_audio` converts the audio to AAC.
pub fn ffmpeg_args(spec: &StreamSpec, transcode_audio: bool) -> Vec<String> {
    let mut a = words("-hide_banner -nostdin -loglevel warning");
    match &spec.source {
        Source::Rtsp(url) => {
            a.extend(words(&format!(
                "-rtsp_transport tcp -timeout {RTSP_TIMEOUT_US} -i"
            )));
            a.push(url.clone());
            a.extend(words("-map 0:v -c:v copy"));
            match (spec.audio, transcode_audio) {
                (AudioMode::Off, _) => a.push("-an".into()),
                (AudioMode::Copy, _) | (AudioMode::Auto, false) => {
                    a.extend(words("-map 0:a? -c:a copy"))
                }
                (AudioMode::Auto, true) => a.extend(words("-map 0:a? -c:a aac -b:a 64k")),
            }
        }
        Source::TestPattern => {
            a.extend(words("-re -f lavfi -i"));
            a.push(
                "testsrc2=size=640x360:rate=15,drawtext=text='%{localtime\\:%Y-%m-%d %H\\\\\\:%M\\\\\\:%S} UTC'\
                 :x=10:y=10:fontsize=24:fontcolor=white:box=1:boxcolor=black"
                    .into(),
            );
            a.extend(words(
                "-f lavfi -i sine=frequency=440:sample_rate=48000 -map 0:v -map 1:a",
            ));
            a.extend(words(
                "-c:v libx264 -preset veryfast -tune zerolatency -pix_fmt yuv420p -g 30",
            ));
            a.extend(words("-c:a aac -b:a 64k"));
        }
    }
    a.extend(segment_output_args(spec.segment_seconds, &spec.dir));
    a
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

/// The output half of the command line: fragmented-MP4 segments named by their UTC start.
/// `flush_packets=1` makes every fragment reach the disk whole, so a kill leaves no cut box.
pub fn segment_output_args(segment_seconds: u32, dir: &Path) -> Vec<String> {
    let mut a = words("-f segment -strftime 1 -reset_timestamps 1 -segment_format mp4");
    a.extend(["-segment_time".into(), segment_seconds.to_string()]);
    a.extend(["-segment_format_options".into(), SEGMENT_MOVFLAGS.into()]);
    a.push(
        dir.join("%Y-%m-%d_%H-%M-%S.mp4")
            .to_string_lossy()
            .into_owned(),
    );
    a
}

pub const SEGMENT_MOVFLAGS: &str =
    "movflags=+frag_keyframe+empty_moov+default_base_moof:flush_packets=1";

/// What ffmpeg prints when the source's audio cannot be copied into MP4.
fn needs_audio_transcode(line: &str) -> bool {
    line.contains("codec not currently supported in container")
        || line.contains("Could not find tag for codec")
}

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
        let (specs, disabled) = match cmd {
            Command_::Apply(specs, disabled) => (specs, disabled),
            Command_::Stop => (Vec::new(), Vec::new()),
        };
        let stopping = specs.is_empty() && disabled.is_empty();
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
            Outcome::Exited(why) => why,
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

/// `host:port` of an RTSP URL (554 by default, 322 for rtsps).
fn rtsp_host_port(source: &Source) -> Option<String> {
    let Source::Rtsp(url) = source else {
        return None;
    };
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let has_port = host_port
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.ends_with('[') && p.parse::<u16>().is_ok())
        && !host_port.ends_with(']');
    if has_port {
        Some(host_port.to_owned())
    } else {
        let port = if scheme.eq_ignore_ascii_case("rtsps") {
            322
        } else {
            554
        };
        Some(format!("{host_port}:{port}"))
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

fn exit_reason(status: ExitStatus, last_line: &str) -> String {
    let how = match status.code() {
        Some(0) => "ffmpeg exited (the source ended or went away)".to_string(),
        Some(c) => format!("ffmpeg exited with code {c}"),
        None => "ffmpeg was killed".to_string(),
    };
    if last_line.is_empty() {
        how
    } else {
        format!("{how}: {last_line}")
    }
}

fn spawn_ffmpeg(spec: &StreamSpec, transcode_audio: bool) -> Result<Child> {
    let mut cmd = std::process::Command::new(&spec.ffmpeg);
    cmd.args(ffmpeg_args(spec, transcode_audio))
        .env("TZ", "UTC")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: sigprocmask and prctl are async-signal-safe and touch no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            // The daemon blocks its stop signals for sigwait; ffmpeg must receive SIGINT.
            nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .map_err(std::io::Error::from)?;
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut cmd = Command::from(cmd);
    cmd.kill_on_drop(true);
    cmd.spawn()
        .map_err(|e| Error::from(e).context(format!("starting {}", spec.ffmpeg)))
}

/// SIGINT, so ffmpeg finishes the file, then SIGKILL after `grace`.
async fn stop_child(id: &str, child: &mut Child, grace: Duration) {
    if let Some(pid) = child.id() {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGINT);
    }
    if timeout(grace, child.wait()).await.is_err() {
        log::warn!("{id}: ffmpeg did not stop within {grace:?}; killing it");
        let _ = child.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets_after_a_stable_run() {
        let s = Duration::from_secs;
        let mut b = Backoff::new(s(1), s(8), s(60));
        let waits: Vec<_> = (0..6).map(|_| b.after_run(s(2)).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 8, 8]);
        assert_eq!(b.after_run(s(61)), s(1));
        assert_eq!(b.after_run(s(1)), s(2));
    }

    #[test]
    fn command_line_copies_video_and_follows_the_audio_mode() {
        let mut spec = StreamSpec {
            id: "cam".into(),
            source: Source::Rtsp("rtsp://127.0.0.1:8955/cam".into()),
            segment_seconds: 900,
            audio: AudioMode::Auto,
            ffmpeg: "ffmpeg".into(),
            dir: "/rec/cam".into(),
        };
        let line = ffmpeg_args(&spec, false).join(" ");
        assert!(
            line.contains("-rtsp_transport tcp -timeout 10000000 -i rtsp://127.0.0.1:8955/cam"),
            "{line}"
        );
        assert!(
            line.contains("-map 0:v -c:v copy -map 0:a? -c:a copy"),
            "{line}"
        );
        assert!(line.ends_with("-segment_time 900 -segment_format_options movflags=+frag_keyframe+empty_moov+default_base_moof:flush_packets=1 /rec/cam/%Y-%m-%d_%H-%M-%S.mp4"), "{line}");
        assert!(!line.contains("libx264"));
        assert!(ffmpeg_args(&spec, true).join(" ").contains("-c:a aac"));
        spec.audio = AudioMode::Off;
        assert!(ffmpeg_args(&spec, true).join(" ").contains("-c:v copy -an"));
        spec.audio = AudioMode::Copy;
        assert!(ffmpeg_args(&spec, true).join(" ").contains("-c:a copy"));
    }

    #[test]
    fn rtsp_addresses_for_the_reachability_check() {
        let hp = |u: &str| rtsp_host_port(&Source::Rtsp(u.into()));
        assert_eq!(
            hp("rtsp://127.0.0.1:8955/cam").as_deref(),
            Some("127.0.0.1:8955")
        );
        assert_eq!(
            hp("rtsp://user:pw@cam.local/s1").as_deref(),
            Some("cam.local:554")
        );
        assert_eq!(hp("rtsps://cam/s1").as_deref(), Some("cam:322"));
        assert_eq!(hp("rtsp://[::1]:8554/x").as_deref(), Some("[::1]:8554"));
        assert_eq!(hp("rtsp://[::1]/x").as_deref(), Some("[::1]:554"));
        assert_eq!(rtsp_host_port(&Source::TestPattern), None);
    }

    #[test]
    fn audio_that_mp4_cannot_carry_is_recognised() {
        assert!(needs_audio_transcode(
            "[mp4 @ 0x1] Could not find tag for codec pcm_alaw in stream #1, codec not currently supported in container"
        ));
        assert!(!needs_audio_transcode("Connection refused"));
    }
}
