//! The one shared test helper: temp dirs, real media made by ffmpeg, and the daemon binary.
//! Everything here drives real programs; nothing is faked.
#![allow(dead_code)]

pub mod browser;
pub mod hostile;
pub mod http;

// Not every test binary uses every part.
#[allow(unused_imports)]
pub use browser::*;
#[allow(unused_imports)]
pub use http::*;

use std::io::{BufRead, BufReader};

pub use nix::sys::signal::Signal;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use wallflower_nvr::recorder::segment_output_args;

pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("wf-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_wallflower-nvr")
}

/// Runs a command and panics with its stderr if it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{cmd:?}: {e} (is ffmpeg installed? `bash .ci/run` installs it)")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The H.264 (and optional AAC) encoder arguments of a small synthetic camera.
pub fn camera_args(seconds: f64, audio: bool) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "-hide_banner".into(),
        "-v".into(),
        "error".into(),
        "-y".into(),
    ];
    a.extend(
        [
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc=size=320x240:rate=25:duration={seconds}"),
        ]
        .map(String::from),
    );
    if audio {
        a.extend(
            [
                "-f",
                "lavfi",
                "-i",
                &format!("sine=frequency=440:sample_rate=48000:duration={seconds}"),
            ]
            .map(String::from),
        );
    }
    a.extend(
        [
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
        ]
        .map(String::from),
    );
    if audio {
        a.extend(["-c:a", "aac"].map(String::from));
    }
    a
}

pub const SEGMENT_MOVFLAGS: &str =
    "movflags=+frag_keyframe+empty_moov+default_base_moof:flush_packets=1";

/// Records `seconds` of the synthetic camera into `dir` as the recorder does: segment muxer,
/// fragmented MP4, UTC names. Returns the files, oldest first.
pub fn record_segments(
    dir: &Path,
    seconds: f64,
    segment_seconds: u32,
    audio: bool,
    realtime: bool,
) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let mut a = Vec::new();
    if realtime {
        a.push("-re".to_string());
    }
    let mut args = camera_args(seconds, audio);
    let inputs_at = args.iter().position(|x| x == "-f").unwrap();
    for (i, x) in a.into_iter().enumerate() {
        args.insert(inputs_at + i, x);
    }
    args.extend(segment_output_args(segment_seconds, dir));
    run(Command::new("ffmpeg").args(&args).env("TZ", "UTC"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// ffprobe's `format=duration`, in seconds.
pub fn ffprobe_duration(path: &Path) -> Option<f64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// A corpus of real files made by ffmpeg: fragmented and plain, with and without audio, several
/// codecs. Made once per test binary.
pub fn corpus() -> &'static [PathBuf] {
    static CORPUS: OnceLock<(TempDir, Vec<PathBuf>)> = OnceLock::new();
    let (_, files) = CORPUS.get_or_init(|| {
        let dir = TempDir::new("corpus");
        let mut files = Vec::new();
        let frag = "-movflags +frag_keyframe+empty_moov+default_base_moof";
        let x264 = "-c:v libx264 -preset ultrafast";
        let cases = [
            ("frag_h264_aac.mp4", format!("{x264} -g 25 -c:a aac {frag}")),
            ("frag_h264.mp4", format!("-an {x264} -g 30 {frag}")),
            ("frag_h264_bframes_aac.mp4", format!("-c:v libx264 -preset fast -bf 3 -g 50 -c:a aac {frag}")),
            (
                "frag_hevc_aac.mp4",
                format!("-c:v libx265 -preset ultrafast -x265-params log-level=error -g 25 -c:a aac {frag}"),
            ),
            ("frag_h264_mp3.mp4", format!("{x264} -g 25 -c:a libmp3lame {frag}")),
            ("frag_h264_opus.mp4", format!("{x264} -g 25 -c:a libopus {frag}")),
            (
                "frag_every_frame.mp4",
                format!("-an {x264} -g 25 -movflags +frag_every_frame+empty_moov+default_base_moof"),
            ),
            ("plain_h264_aac.mp4", format!("{x264} -g 25 -c:a aac")),
            ("plain_h264.mp4", format!("-an {x264}")),
            ("plain_bframes_aac_faststart.mp4", "-c:v libx264 -preset fast -bf 2 -c:a aac -movflags +faststart".into()),
        ];
        for (name, args) in cases {
            let out = dir.path().join(name);
            let mut cmd = Command::new("ffmpeg");
            cmd.args([
                "-hide_banner",
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=320x240:rate=25:duration=6.3",
            ]);
            cmd.args([
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=300:sample_rate=48000:duration=6.3",
            ]);
            cmd.args(args.split(' ')).arg(&out);
            run(&mut cmd);
            files.push(out);
        }
        let seg = dir.path().join("segments");
        files.extend(record_segments(&seg, 7.0, 3, true, true));
        (dir, files)
    });
    files
}

/// Offsets where each top-level box starts, read with a plain loop independent of the probe.
pub fn top_level_boxes(path: &Path) -> Vec<(u64, [u8; 4], u64)> {
    let data = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 8 <= data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as u64;
        let kind: [u8; 4] = data[at + 4..at + 8].try_into().unwrap();
        let size = if size == 1 {
            u64::from_be_bytes(data[at + 8..at + 16].try_into().unwrap())
        } else {
            size
        };
        out.push((at as u64, kind, size));
        at += size as usize;
    }
    out
}

/// Waits for `cond` with a deadline; true if it became true.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// The daemon binary, run with a config file in a temp dir; its stderr lines are collected.
pub struct Daemon {
    pub child: Child,
    lines: Mutex<mpsc::Receiver<String>>,
    pub log: Vec<String>,
}

impl Daemon {
    pub fn start(config: &Path) -> Daemon {
        Self::start_with(Command::new(bin()).args(["run", "-c"]).arg(config))
    }

    pub fn start_with(cmd: &mut Command) -> Daemon {
        let mut child = cmd
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("daemon: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon {
            child,
            lines: Mutex::new(rx),
            log: Vec::new(),
        }
    }

    /// Waits for a log line containing `needle`; returns it.
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) -> Option<String> {
        if let Some(l) = self.log.iter().find(|l| l.contains(needle)) {
            return Some(l.clone());
        }
        let deadline = Instant::now() + timeout;
        let rx = self.lines.lock().unwrap();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(l) => {
                    self.log.push(l.clone());
                    if l.contains(needle) {
                        return Some(l);
                    }
                }
                Err(_) => return None,
            }
        }
        None
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn wait(mut self, timeout: Duration) -> std::process::ExitStatus {
        let t0 = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                t0.elapsed() < timeout,
                "daemon did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config file for the daemon that keeps everything inside `dir`.
/// Age retention is off (`default_days = 0`): test footage is dated in the past on purpose.
pub fn write_config(dir: &Path, streams: &str) -> PathBuf {
    write_config_with(dir, "default_days = 0\n", streams)
}

/// A config file with the given `[retention]` keys.
pub fn write_config_with(dir: &Path, retention: &str, streams: &str) -> PathBuf {
    let text = format!(
        "[storage]\nrecordings_dir = \"{}\"\nindex_path = \"{}\"\nstate_dir = \"{}\"\n\
         [http]\nlisten = \"127.0.0.1:0\"\n[retention]\n{retention}{streams}",
        dir.join("recordings").display(),
        dir.join("index.redb").display(),
        dir.join("state").display()
    );
    let p = dir.join("config.toml");
    std::fs::write(&p, text).unwrap();
    // A config that is bad on purpose has no daemon to log in to.
    let valid = wallflower_nvr::config::Config::load(&p).is_ok();
    if valid && !dir.join("state/accounts.json").exists() {
        add_user(&p, ADMIN, "admin");
    }
    p
}

/// The test camera: Debian's GStreamer RTSP server (`tests/rtsp-server.py`) serving H.264 + AAC
/// on each mount point, on a free loopback port.
pub struct RtspServer {
    child: Option<Child>,
    pub port: u16,
    mounts: Vec<String>,
}

impl RtspServer {
    pub fn start(mounts: &[&str]) -> RtspServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = RtspServer {
            child: None,
            port,
            mounts: mounts.iter().map(|m| m.to_string()).collect(),
        };
        s.restart();
        s
    }

    pub fn url(&self, mount: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{mount}", self.port)
    }

    /// (Re)starts the server on the same port; returns once it listens.
    pub fn restart(&mut self) {
        self.kill();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rtsp-server.py");
        for _ in 0..50 {
            let mut child = Command::new("/usr/bin/python3")
                .arg(script)
                .arg(self.port.to_string())
                .args(&self.mounts)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("the GStreamer RTSP server starts (`bash .ci/setup` installs it)");
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            if line.trim() == "ready" {
                self.child = Some(child);
                return;
            }
            // The port may still be held by the previous server's connections.
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("the RTSP server did not start on port {}", self.port);
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn signal(&self, sig: Signal) {
        let c = self.child.as_ref().expect("running");
        kill(Pid::from_raw(c.id() as i32), sig).unwrap();
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGCONT);
        }
        self.kill();
    }
}

/// The pids of the ffmpeg processes whose parent is `parent`.
pub fn ffmpeg_children(parent: u32) -> Vec<u32> {
    ffmpeg_processes()
        .into_iter()
        .filter(|(_, ppid)| *ppid == parent)
        .map(|(pid, _)| pid)
        .collect()
}

/// Every ffmpeg process on the machine: (pid, parent pid).
pub fn ffmpeg_processes() -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid …
        let Some((comm, rest)) = stat.split_once(") ") else {
            continue;
        };
        if !comm.ends_with("(ffmpeg") {
            continue;
        }
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("");
        let ppid = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if state != "Z" {
            out.push((pid, ppid));
        }
    }
    out
}

/// The command line of `pid`, arguments separated by spaces.
pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline")).map_or_else(
        |_| String::new(),
        |c| String::from_utf8_lossy(&c).replace('\0', " "),
    )
}

pub fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// One fragmented segment made by ffmpeg as the recorder makes them (1 s GOP, 25 fps, no
/// audio), `seconds` long, at `size`.
pub fn make_segment(path: &Path, size: &str, seconds: u32) {
    run(Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=size={size}:rate=25:duration={seconds}"))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
        ])
        .args([
            "-f",
            "mp4",
            "-movflags",
            "+frag_keyframe+empty_moov+default_base_moof",
        ])
        .arg(path));
}

/// A fragmented segment of lossless noise: `seconds` at `size` make it large (several
/// megabytes a second), for tests and benchmarks that need a big file.
pub fn noise_segment(out: &Path, size: &str, seconds: f64) {
    let mut args = camera_args(seconds, false);
    if let Some(i) = args.iter().position(|a| a.starts_with("testsrc=")) {
        args[i] = format!("testsrc=size={size}:rate=25:duration={seconds}");
    }
    args.extend(
        "-vf noise=alls=100:allf=t -qp 0 -movflags +frag_keyframe+empty_moov+default_base_moof"
            .split(' ')
            .map(String::from),
    );
    args.push(out.to_string_lossy().into_owned());
    run(Command::new("ffmpeg").args(&args));
}

/// A `/proc/PID/status` field in KiB (`VmRSS:`, `VmHWM:`).
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}
