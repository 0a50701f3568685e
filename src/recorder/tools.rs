//! Short-lived ffmpeg tools for the admin pages (SPEC §6): what a camera URL sends (ffprobe),
//! and a JPEG of a recorded keyframe (ffmpeg). Each runs with a deadline, at idle priority
//! (`nice -n 19`), at most [`MAX_RUNNING`] at once for the whole box, and is killed when its
//! deadline passes or its caller goes away; recording never waits on them.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use serde_json::{Value, json};
use tokio::process::Command;
use tokio::sync::Semaphore;

use crate::auth::secret::redact_credentials;
use crate::error::{Error, Kind, Result};

/// Tools running at once; the rest wait their turn.
pub const MAX_RUNNING: usize = 2;
/// How long a camera probe may take in all (SPEC: a clear answer within 15 s).
pub const PROBE_DEADLINE: Duration = Duration::from_secs(12);
/// How long a snapshot may take.
pub const SNAPSHOT_DEADLINE: Duration = Duration::from_secs(10);
/// The most bytes of output read from a tool.
const MAX_OUTPUT: usize = 4 << 20;

static RUNNING: Semaphore = Semaphore::const_new(MAX_RUNNING);

/// `ffprobe` next to `ffmpeg`: the same folder, or a bare name on PATH.
pub fn ffprobe_for(ffmpeg: &str) -> String {
    match ffmpeg.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/ffprobe"),
        None => "ffprobe".into(),
    }
}

/// Runs `program args` under `nice`, with a deadline, `input` on its stdin: (exit ok, stdout,
/// the last line of stderr).
async fn run(
    program: &str,
    args: &[String],
    input: Vec<u8>,
    deadline: Duration,
) -> Result<(bool, Vec<u8>, String)> {
    let _turn = RUNNING
        .acquire()
        .await
        .map_err(|_| Error::internal("tool gate closed"))?;
    let mut std_cmd = std::process::Command::new("nice");
    std_cmd
        .args(["-n", "19", program])
        .args(args)
        .stdin(if input.is_empty() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: sigprocmask and prctl are async-signal-safe and touch no memory of the parent.
    unsafe {
        use std::os::unix::process::CommandExt;
        std_cmd.pre_exec(|| {
            nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .map_err(std::io::Error::from)?;
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut cmd = Command::from(std_cmd);
    cmd.kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::from(e).context(format!("starting {program}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            // The tool may stop reading once it has its frame: a broken pipe is no error.
            let _ = stdin.write_all(&input).await;
        });
    }
    let out = tokio::time::timeout(deadline, child.wait_with_output())
        .await
        .map_err(|_| {
            Error::new(
                Kind::Io,
                format!("no answer within {} s", deadline.as_secs()),
            )
        })?
        .map_err(|e| Error::from(e).context(program))?;
    let mut stdout = out.stdout;
    stdout.truncate(MAX_OUTPUT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_owned();
    Ok((out.status.success(), stdout, redact_credentials(&last)))
}

/// What `url` sends: `{"ok": true, "video_codec", "width", "height", "fps", "audio_codec"}` or
/// `{"ok": false, "error"}` in plain words.
pub async fn probe_source(ffprobe: &str, url: &str) -> Value {
    let args: Vec<String> = [
        "-v",
        "error",
        "-rtsp_transport",
        "tcp",
        "-timeout",
        "8000000",
        "-show_entries",
        "stream=codec_type,codec_name,width,height,avg_frame_rate",
        "-of",
        "json",
        url,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    match run(ffprobe, &args, Vec::new(), PROBE_DEADLINE).await {
        Err(e) => json!({"ok": false, "error": format!("the camera did not answer: {}", e.msg)}),
        Ok((false, _, why)) => json!({"ok": false, "error": plain(&why)}),
        Ok((true, out, _)) => describe(&out),
    }
}

/// ffprobe's last error line, said for people.
fn plain(why: &str) -> String {
    let lower = why.to_ascii_lowercase();
    let said = if lower.contains("connection refused") {
        "nothing answers at that address and port (connection refused)"
    } else if lower.contains("401") || lower.contains("unauthorized") {
        "the camera refused the user name or password (401 Unauthorized)"
    } else if lower.contains("404") || lower.contains("not found") {
        "the camera has no stream at that path (404 Not Found)"
    } else if lower.contains("timed out") || lower.contains("timeout") {
        "the camera did not answer in time"
    } else if lower.contains("no route") || lower.contains("unreachable") {
        "that address cannot be reached from the box"
    } else {
        ""
    };
    match (said.is_empty(), why.is_empty()) {
        (true, true) => "the camera's stream could not be read".into(),
        (true, false) => why.to_owned(),
        (false, _) => format!("{said}: {why}"),
    }
}

fn describe(out: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(out).unwrap_or(Value::Null);
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    let of = |kind: &str| streams.iter().find(|s| s["codec_type"] == kind);
    let Some(video) = of("video") else {
        return json!({"ok": false, "error": "the stream has no video"});
    };
    let fps = video["avg_frame_rate"].as_str().and_then(|r| {
        let (n, d) = r.split_once('/')?;
        let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
        (d > 0.0 && n > 0.0).then(|| (n / d * 100.0).round() / 100.0)
    });
    json!({
        "ok": true,
        "video_codec": video["codec_name"],
        "width": video["width"],
        "height": video["height"],
        "fps": fps,
        "audio_codec": of("audio").map_or(Value::Null, |a| a["codec_name"].clone()),
    })
}

/// Where a snapshot's picture comes from.
pub enum Source<'a> {
    /// A recorded file, and how far into it.
    File(&'a Path, f64),
    /// An init segment and fragments from a keyframe on (the live view's first bytes).
    Bytes(Vec<u8>),
}

/// A JPEG of the first keyframe of `source`, `width` pixels wide.
pub async fn snapshot(ffmpeg: &str, source: Source<'_>, width: u32) -> Result<Vec<u8>> {
    let mut args: Vec<String> = ["-v", "error", "-skip_frame", "nokey"]
        .map(String::from)
        .to_vec();
    let input = match source {
        Source::File(file, offset_s) => {
            args.extend([
                "-noaccurate_seek".into(),
                "-ss".into(),
                format!("{:.3}", offset_s.max(0.0)),
            ]);
            args.extend(["-i".into(), file.display().to_string()]);
            Vec::new()
        }
        Source::Bytes(b) => {
            args.extend(["-f", "mp4", "-i", "pipe:0"].map(String::from));
            b
        }
    };
    args.extend(["-an", "-frames:v", "1", "-vf"].map(String::from));
    args.push(format!("scale={width}:-2"));
    args.extend(["-q:v", "5", "-f", "image2", "-c:v", "mjpeg", "pipe:1"].map(String::from));
    let (ok, out, why) = run(ffmpeg, &args, input, SNAPSHOT_DEADLINE).await?;
    if !ok || out.is_empty() {
        return Err(Error::new(
            Kind::Io,
            format!("no picture could be taken: {why}"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ffprobe_is_found_beside_ffmpeg() {
        assert_eq!(ffprobe_for("ffmpeg"), "ffprobe");
        assert_eq!(ffprobe_for("/opt/ff/bin/ffmpeg"), "/opt/ff/bin/ffprobe");
    }

    #[test]
    fn answers_are_described() {
        let out = br#"{"streams":[{"codec_type":"video","codec_name":"h264","width":640,"height":480,"avg_frame_rate":"30000/1001"},{"codec_type":"audio","codec_name":"aac"}]}"#;
        assert_eq!(
            describe(out),
            json!({"ok": true, "video_codec": "h264", "width": 640, "height": 480, "fps": 29.97, "audio_codec": "aac"})
        );
        assert_eq!(describe(b"{}")["ok"], false);
        assert!(plain("rtsp://***@x: Connection refused").starts_with("nothing answers"));
    }
}
