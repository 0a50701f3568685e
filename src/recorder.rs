//! The recorder: one ffmpeg per enabled stream, codec copy into fragmented-MP4 segments.
//!
//! Invariants:
//! - ffmpeg never transcodes video; it writes `{recordings_dir}/{stream}/%Y-%m-%d_%H-%M-%S.mp4`
//!   with `TZ=UTC`, so file names are UTC.
//! - Each ffmpeg runs in its own process group and gets SIGKILL when the daemon dies
//!   (`PR_SET_PDEATHSIG`), so no child outlives the daemon, even after a kill -9.
//! - Stopping sends SIGINT first so ffmpeg finishes its file, then SIGKILL after a grace period.
//! - The recorder never waits on the index.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill};
use nix::unistd::Pid;

use crate::config::{AudioMode, Stream};
use crate::error::{Error, Result};

/// Where a recorder's video comes from.
pub enum Source<'a> {
    Rtsp(&'a str),
    /// ffmpeg's own test pattern with a running clock and a tone, encoded to H.264 and AAC.
    TestPattern,
}

/// The ffmpeg arguments that record `source` into `dir` in `segment_seconds` segments.
pub fn ffmpeg_args(
    source: &Source<'_>,
    audio: AudioMode,
    segment_seconds: u32,
    dir: &Path,
) -> Vec<String> {
    let mut a: Vec<String> = ["-hide_banner", "-nostdin", "-loglevel", "warning"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    match source {
        Source::Rtsp(url) => {
            a.extend(
                ["-rtsp_transport", "tcp", "-timeout", "10000000", "-i", url].map(String::from),
            );
            a.extend(["-map", "0:v"].map(String::from));
            match audio {
                AudioMode::Off => {}
                AudioMode::Copy => a.extend(["-map", "0:a?"].map(String::from)),
                AudioMode::Auto => a.extend(["-map", "0:a?"].map(String::from)),
            }
            a.extend(["-c:v", "copy"].map(String::from));
            match audio {
                AudioMode::Off => a.push("-an".into()),
                AudioMode::Copy => a.extend(["-c:a", "copy"].map(String::from)),
                // Copying non-AAC audio into MP4 can fail; AAC in, AAC out costs nothing.
                AudioMode::Auto => a.extend(["-c:a", "aac"].map(String::from)),
            }
        }
        Source::TestPattern => {
            a.extend(
                [
                    "-re",
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc2=size=640x360:rate=15,drawtext=text='%{localtime\\:%Y-%m-%d %H\\\\\\:%M\\\\\\:%S}':x=10:y=10:fontsize=24:fontcolor=white:box=1:boxcolor=black",
                    "-f",
                    "lavfi",
                    "-i",
                    "sine=frequency=440:sample_rate=48000",
                    "-map",
                    "0:v",
                    "-map",
                    "1:a",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "veryfast",
                    "-tune",
                    "zerolatency",
                    "-pix_fmt",
                    "yuv420p",
                    "-g",
                    "30",
                    "-c:a",
                    "aac",
                    "-b:a",
                    "64k",
                ]
                .map(String::from),
            );
        }
    }
    a.extend(segment_output_args(segment_seconds, dir));
    a
}

/// The output half of the command line: fragmented-MP4 segments named by their UTC start.
/// `flush_packets=1` makes every fragment reach the disk whole, so a kill leaves no cut box.
pub fn segment_output_args(segment_seconds: u32, dir: &Path) -> Vec<String> {
    let mut a: Vec<String> = "-f segment -strftime 1 -reset_timestamps 1 -segment_format mp4"
        .split(' ')
        .map(String::from)
        .collect();
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

/// One running ffmpeg.
pub struct Recorder {
    pub stream_id: String,
    child: Child,
}

impl Recorder {
    /// Starts ffmpeg for `stream` writing into `recordings_dir/{id}`.
    pub fn start(
        ffmpeg: &str,
        stream: &Stream,
        source: Source<'_>,
        audio: AudioMode,
        recordings_dir: &Path,
    ) -> Result<Recorder> {
        let dir = recordings_dir.join(&stream.id);
        // The segment muxer does not create the folder.
        std::fs::create_dir_all(&dir).map_err(|e| Error::from(e).context(dir.display()))?;
        let mut cmd = Command::new(ffmpeg);
        cmd.args(ffmpeg_args(&source, audio, stream.segment_seconds, &dir))
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                // The daemon blocks its stop signals for sigwait; ffmpeg must receive SIGINT.
                nix::sys::signal::sigprocmask(
                    SigmaskHow::SIG_SETMASK,
                    Some(&SigSet::empty()),
                    None,
                )
                .map_err(std::io::Error::from)?;
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| Error::from(e).context(format!("starting {ffmpeg}")))?;
        log::info!("{}: recording (ffmpeg pid {})", stream.id, child.id());
        Ok(Recorder {
            stream_id: stream.id.clone(),
            child,
        })
    }

    /// SIGINT, so ffmpeg finishes the file, then SIGKILL after `grace`.
    pub fn stop(mut self, grace: Duration) {
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGINT);
        let deadline = Instant::now() + grace;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => break,
            }
        }
        log::warn!(
            "{}: ffmpeg did not stop within {grace:?}; killing it",
            self.stream_id
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
