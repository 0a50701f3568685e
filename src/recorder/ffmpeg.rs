//! ffmpeg for one stream: its command line (codec copy into UTC-named fragmented-MP4
//! segments), starting it in its own process group with a death signal, and stopping it so it
//! finishes its file.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::time::timeout;

use crate::config::{AudioMode, Config};
use crate::error::{Error, Result};

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
pub(super) fn needs_audio_transcode(line: &str) -> bool {
    line.contains("codec not currently supported in container")
        || line.contains("Could not find tag for codec")
}

/// `host:port` of an RTSP URL (554 by default, 322 for rtsps).
pub(super) fn rtsp_host_port(source: &Source) -> Option<String> {
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

pub(super) fn exit_reason(status: ExitStatus, last_line: &str) -> String {
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

pub(super) fn spawn_ffmpeg(spec: &StreamSpec, transcode_audio: bool) -> Result<Child> {
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
pub(super) async fn stop_child(id: &str, child: &mut Child, grace: Duration) {
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
