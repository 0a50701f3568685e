//! Continuous video (SPEC §4.1) on real recordings: the real daemon records Debian's GStreamer
//! RTSP server with real ffmpeg, the server is stopped to make a gap, and the stitched and live
//! MP4s are checked with ffprobe, ffmpeg's decoder, a raw HTTP client and headless Chromium.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Browser, Daemon, Resp, RtspServer, TempDir, http, http_for, wait_for, write_config};
use serde_json::Value;

const SEGMENT_SECONDS: u32 = 4;

fn get(addr: &str, path: &str) -> Resp {
    http(addr, "GET", path, &[], b"")
}

fn rfc3339_s(v: &Value) -> f64 {
    let t: jiff::Timestamp = v.as_str().unwrap().parse().unwrap();
    t.as_microsecond() as f64 / 1e6
}

/// ffprobe's `format=duration` of `path`.
fn duration_s(path: &Path) -> f64 {
    common::ffprobe_duration(path).expect("ffprobe gives a duration")
}

/// What ffmpeg's decoder says about `path` at level `error` (nothing, for a good file).
fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The decode times of the video frames of `path`, in seconds.
fn video_dts(path: &Path) -> Vec<f64> {
    common::run(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-select_streams",
                "v",
                "-show_entries",
                "packet=dts_time",
                "-of",
                "csv=p=0",
            ])
            .arg(path),
    )
    .lines()
    .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
    .collect()
}

/// Asserts that frame times rise by one frame at a time: no jump, no step back.
fn assert_no_jump(dts: &[f64], what: &str) {
    assert!(dts.len() > 10, "{what}: only {} frames", dts.len());
    for w in dts.windows(2) {
        let step = w[1] - w[0];
        assert!(
            step > 0.0 && step < 0.15,
            "{what}: frame time goes {} → {}",
            w[0],
            w[1]
        );
    }
}

fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

struct Recording {
    _server: RtspServer,
    daemon: Daemon,
    addr: String,
    dir: TempDir,
}

/// Records the test camera with one outage of about `outage` in the middle.
fn record(tag: &str, before: usize, outage: Duration, after: usize) -> Recording {
    let mut server = RtspServer::start(&["cam"]);
    let dir = TempDir::new(tag);
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[streams]]\nid = \"cam\"\nurl = \"{}\"\nsegment_seconds = {SEGMENT_SECONDS}\n",
            server.url("cam")
        ),
    );
    let mut daemon = Daemon::start(&cfg);
    let addr = daemon.http_addr();
    let count = |addr: &str| {
        get(addr, "/api/streams/cam/recordings")
            .json()
            .as_array()
            .map_or(0, Vec::len)
    };
    let wait = Duration::from_secs(30 + 6 * (before + after) as u64);
    assert!(
        wait_for(wait, || count(&addr) >= before),
        "segments before the outage"
    );
    if !outage.is_zero() {
        server.kill();
        std::thread::sleep(outage);
        server.restart();
        assert!(
            wait_for(wait, || count(&addr) >= before + 1 + after),
            "segments after the outage"
        );
    }
    Recording {
        _server: server,
        daemon,
        addr,
        dir,
    }
}

#[test]
fn stitched_playback_of_real_recordings_with_a_gap() {
    let r = record("playback", 3, Duration::from_secs(5), 3);
    let addr = r.addr.as_str();
    let recs = get(addr, "/api/streams/cam/recordings").json();
    let recs = recs.as_array().unwrap();

    // The segment being written counts, up to its last complete fragment.
    let indexed_end = |recs: &Value| {
        recs.as_array()
            .unwrap()
            .last()
            .map_or(0.0, |r| rfc3339_s(&r["end_time"]))
    };
    assert!(
        wait_for(Duration::from_secs(20), || {
            let listed = get(addr, "/api/streams/cam/recordings").json();
            let j = get(addr, "/api/streams/cam/playback.json").json();
            rfc3339_s(&j["end_time"]) > indexed_end(&listed) + 0.5
        }),
        "playback.json never reached into the segment being written"
    );

    // A closed range over everything recorded so far, so the answer stays put.
    let first_start = rfc3339_s(&recs[0]["start_time"]);
    let last_end = rfc3339_s(&recs.last().unwrap()["end_time"]);
    let q = format!("start={first_start}&end={last_end}");
    let j = get(addr, &format!("/api/streams/cam/playback.json?{q}")).json();
    let spans = j["spans"].as_array().unwrap();
    let duration = j["duration_seconds"].as_f64().unwrap();
    assert!(spans.len() >= 2, "the outage is a gap: {j}");
    let gap = rfc3339_s(&spans[1]["start_time"]) - rfc3339_s(&spans[0]["end_time"]);
    assert!(gap > 3.0, "the gap is {gap} s: {j}");
    let span_sum: f64 = spans
        .iter()
        .map(|s| rfc3339_s(&s["end_time"]) - rfc3339_s(&s["start_time"]))
        .sum();
    assert!(
        (span_sum - duration).abs() < 0.002,
        "spans {span_sum} s, duration {duration} s"
    );
    for w in spans.windows(2) {
        let media = w[1]["media_start_seconds"].as_f64().unwrap();
        let prev_len = rfc3339_s(&w[0]["end_time"]) - rfc3339_s(&w[0]["start_time"]);
        assert!(
            (media - w[0]["media_start_seconds"].as_f64().unwrap() - prev_len).abs() < 0.002,
            "spans follow each other in media time: {j}"
        );
    }
    assert_eq!(spans[0]["recording_id"], recs[0]["id"]);
    let wall = rfc3339_s(&j["end_time"]) - rfc3339_s(&j["start_time"]);
    assert!(
        wall - duration > 3.0,
        "the gap is closed in media time: {j}"
    );

    // The stitched file: its size is known up front; it decodes cleanly; time runs on.
    let full = get(addr, &format!("/api/streams/cam/playback.mp4?{q}"));
    assert_eq!(full.status, 200);
    assert_eq!(full.header("content-type"), Some("video/mp4"));
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        full.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        full.body.len()
    );
    let etag = full.header("etag").unwrap().to_owned();
    let tmp = TempDir::new("playback-out");
    let file = write(&tmp, "full.mp4", &full.body);
    assert_eq!(decode_errors(&file), "");
    let probed = duration_s(&file);
    assert!(
        (probed - duration).abs() < 0.1,
        "ffprobe {probed} s, playback.json {duration} s"
    );
    let dts = video_dts(&file);
    assert_no_jump(&dts, "stitched");
    assert!((dts[0]).abs() < 0.001, "starts at 0: {}", dts[0]);

    // Any byte window read with Range equals that window of the whole.
    let len = full.body.len();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut windows = vec![(0, 0), (0, 99), (len - 1, len - 1), (1000, 1500)];
    for _ in 0..24 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let a = (x % len as u64) as usize;
        let b = (a + (x >> 40) as usize % 200_000).min(len - 1);
        windows.push((a, b));
    }
    for (a, b) in windows {
        let part = http(
            addr,
            "GET",
            &format!("/api/streams/cam/playback.mp4?{q}"),
            &[("Range", &format!("bytes={a}-{b}"))],
            b"",
        );
        assert_eq!(part.status, 206, "bytes={a}-{b}");
        assert_eq!(part.header("etag"), Some(etag.as_str()));
        assert_eq!(
            part.header("content-range"),
            Some(format!("bytes {a}-{b}/{len}").as_str())
        );
        assert!(
            part.body == full.body[a..=b],
            "bytes={a}-{b} differ from the whole"
        );
    }
    let past = http(
        addr,
        "GET",
        &format!("/api/streams/cam/playback.mp4?{q}"),
        &[("Range", &format!("bytes={len}-"))],
        b"",
    );
    assert_eq!(past.status, 416);

    // Export: the same bytes as an attachment with a readable name.
    let export = get(
        addr,
        &format!("/api/streams/cam/playback.mp4?{q}&download=1"),
    );
    assert!(export.body == full.body);
    let disposition = export.header("content-disposition").unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"cam_20")
            && disposition.ends_with(".mp4\"")
            && disposition.matches(".mp4").count() == 1,
        "{disposition}"
    );

    // A window inside the third segment starts at the keyframe at or before `start` and ends
    // with the fragment that covers `end`.
    let third = rfc3339_s(&recs[2]["start_time"]);
    let (start, end) = (third + 1.5, third + 3.2);
    let jw = get(
        addr,
        &format!("/api/streams/cam/playback.json?start={start}&end={end}"),
    )
    .json();
    let (ws, we) = (rfc3339_s(&jw["start_time"]), rfc3339_s(&jw["end_time"]));
    assert!(
        ws <= start + 0.001 && ws > start - 1.1,
        "starts at {ws} for {start}: {jw}"
    );
    assert!(
        we >= end - 0.001 && we < end + 1.1,
        "ends at {we} for {end}: {jw}"
    );
    let part = get(
        addr,
        &format!("/api/streams/cam/playback.mp4?start={start}&end={end}"),
    );
    let pf = write(&tmp, "part.mp4", &part.body);
    assert_eq!(decode_errors(&pf), "");
    let pd = duration_s(&pf);
    let want = jw["duration_seconds"].as_f64().unwrap();
    assert!((pd - want).abs() < 0.1, "{pd} vs {want}");

    // A start in the gap begins with the footage after it; a range after everything has none.
    let in_gap = rfc3339_s(&spans[0]["end_time"]) + 1.0;
    let jg = get(
        addr,
        &format!("/api/streams/cam/playback.json?start={in_gap}&end={last_end}"),
    )
    .json();
    assert!(
        (rfc3339_s(&jg["start_time"]) - rfc3339_s(&spans[1]["start_time"])).abs() < 0.001,
        "{jg}"
    );
    let later = get(
        addr,
        &format!(
            "/api/streams/cam/playback.json?start={}&end={}",
            last_end + 3600.0,
            last_end + 7200.0
        ),
    );
    assert_eq!(later.status, 404);

    // Bad requests.
    for (path, status) in [
        (
            format!("/api/streams/cam/playback.json?start={end}&end={start}"),
            400,
        ),
        (
            "/api/streams/cam/playback.json?start=yesterday".to_owned(),
            400,
        ),
        ("/api/streams/nope/playback.mp4".to_owned(), 404),
        (
            "/api/streams/cam/playback.mp4?start=0&end=1000".to_owned(),
            404,
        ),
    ] {
        let resp = get(addr, &path);
        assert_eq!(
            resp.status,
            status,
            "{path}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        assert!(resp.json()["error"].is_string());
    }

    // In Chromium: the whole duration at once, a seek into the third segment, and playback
    // that runs on across a segment boundary.
    let browser = Browser::start();
    browser.goto_logged_in(addr, "/");
    let seek_to = 2.0 * f64::from(SEGMENT_SECONDS) + 1.0;
    let boundary = f64::from(SEGMENT_SECONDS);
    let out = browser.run_async(
        r#"const [url, seekTo, boundary, done] = arguments;
        (async () => {
          const v = document.createElement('video');
          v.muted = true;
          v.preload = 'auto';
          const once = ev => new Promise(r => v.addEventListener(ev, r, {once: true}));
          v.addEventListener('error', () => done({error: String(v.error && v.error.message)}));
          v.src = url;
          document.body.append(v);
          await once('loadedmetadata');
          const out = {duration: v.duration};
          v.currentTime = seekTo;
          await once('seeked');
          out.seeked = v.currentTime;
          v.currentTime = boundary - 0.6;
          await once('seeked');
          await v.play();
          await new Promise(r => setTimeout(r, 2000));
          out.played_to = v.currentTime;
          out.stalled = v.readyState < 3;
          done(out);
        })();"#,
        serde_json::json!([
            format!("/api/streams/cam/playback.mp4?{q}"),
            seek_to,
            boundary
        ]),
    );
    assert!(out.get("error").is_none(), "{out}");
    let d = out["duration"].as_f64().unwrap();
    assert!(
        (d - probed).abs() < 0.2,
        "Chromium says {d} s, ffprobe {probed} s"
    );
    assert!(
        (out["seeked"].as_f64().unwrap() - seek_to).abs() < 0.1,
        "{out}"
    );
    assert!(
        out["played_to"].as_f64().unwrap() > boundary + 0.8,
        "playback stopped at the segment boundary: {out}"
    );
    assert_eq!(browser.console_errors(), Vec::<String>::new());
    drop(r.daemon);
}

#[test]
fn live_view_follows_the_recorder_across_roll_over() {
    let r = record("live", 1, Duration::ZERO, 0);
    let addr = r.addr.clone();

    // A raw client: the init segment, then fragments from the newest keyframe on, through at
    // least two roll-overs, with time running on.
    let seconds = 2 * SEGMENT_SECONDS + 3;
    let live = http_for(
        &addr,
        "/api/streams/cam/live.mp4",
        Duration::from_secs(u64::from(seconds)),
    );
    assert_eq!(live.status, 200);
    assert_eq!(live.header("content-type"), Some("video/mp4"));
    let tmp = TempDir::new("live-out");
    let raw = write(&tmp, "raw.mp4", &live.body);
    // Keep whole top-level boxes only: the client hung up mid-fragment.
    let boxes = common::top_level_boxes(&raw);
    let mut keep = 0;
    for (at, kind, size) in &boxes {
        if kind == b"moof" {
            keep = *at;
        }
        if kind == b"mdat" && at + size <= live.body.len() as u64 {
            keep = at + size;
        }
    }
    let file = write(&tmp, "live.mp4", &live.body[..keep as usize]);
    assert_eq!(decode_errors(&file), "");
    let dts = video_dts(&file);
    assert_no_jump(&dts, "live");
    assert!(dts[0].abs() < 0.001, "starts at 0: {}", dts[0]);
    let got = dts.last().unwrap() - dts[0];
    assert!(
        got > f64::from(seconds) - 3.0,
        "{got} s of video in {seconds} s of live view"
    );
    let segments = std::fs::read_dir(r.dir.path().join("recordings/cam"))
        .unwrap()
        .count();
    assert!(
        segments >= 3,
        "the view spanned roll-overs ({segments} files)"
    );

    // In Chromium: it plays, and its clock keeps pace with the recorder's.
    let browser = Browser::start();
    browser.goto_logged_in(&addr, "/");
    let out = browser.run_async(
        r#"const [url, done] = arguments;
        (async () => {
          const v = document.createElement('video');
          v.muted = true;
          v.autoplay = true;
          v.addEventListener('error', () => done({error: String(v.error && v.error.message)}));
          v.src = url;
          document.body.append(v);
          await new Promise(r => v.addEventListener('playing', r, {once: true}));
          const t0 = v.currentTime, w0 = performance.now();
          await new Promise(r => setTimeout(r, 6000));
          done({media: v.currentTime - t0, wall: (performance.now() - w0) / 1000});
        })();"#,
        serde_json::json!(["/api/streams/cam/live.mp4"]),
    );
    assert!(out.get("error").is_none(), "{out}");
    let (media, wall) = (
        out["media"].as_f64().unwrap(),
        out["wall"].as_f64().unwrap(),
    );
    assert!(
        (media - wall).abs() < 1.5,
        "live advanced {media} s in {wall} s"
    );
    assert_eq!(browser.console_errors(), Vec::<String>::new());

    // Stopping the daemon ends live responses instead of waiting on them.
    let viewer = std::thread::spawn(move || {
        let t = std::time::Instant::now();
        let resp = http_for(&addr, "/api/streams/cam/live.mp4", Duration::from_secs(60));
        (resp.body.len(), t.elapsed())
    });
    std::thread::sleep(Duration::from_secs(3));
    r.daemon.signal(common::Signal::SIGTERM);
    assert!(r.daemon.wait(Duration::from_secs(30)).success());
    let (bytes, took) = viewer.join().unwrap();
    assert!(bytes > 0);
    assert!(
        took < Duration::from_secs(40),
        "the live response outlived the daemon"
    );
}

#[test]
fn stitching_stops_where_the_codec_parameters_change() {
    let dir = TempDir::new("playback-codec");
    let cam = dir.path().join("recordings/cam");
    std::fs::create_dir_all(&cam).unwrap();
    let t0_ms = wallflower_nvr::time::parse_segment_name("2026-05-01_10-00-00.mp4").unwrap();
    for (i, size) in ["320x240", "320x240", "320x240", "640x360", "320x240"]
        .iter()
        .enumerate()
    {
        let name = wallflower_nvr::time::segment_name(t0_ms + i as i64 * 2000);
        common::make_segment(&cam.join(name), size, 2);
    }
    let cfg = write_config(
        dir.path(),
        "[[streams]]\nid = \"cam\"\nurl = \"rtsp://127.0.0.1:9/none\"\nenabled = false\n",
    );
    let mut daemon = Daemon::start(&cfg);
    let addr = daemon.http_addr();
    assert!(
        daemon
            .wait_log("backfill:", Duration::from_secs(20))
            .is_some()
    );
    let t0 = t0_ms as f64 / 1000.0;

    let j = get(&addr, "/api/streams/cam/playback.json").json();
    assert!(
        (j["duration_seconds"].as_f64().unwrap() - 6.0).abs() < 0.05,
        "{j}"
    );
    assert_eq!(j["spans"].as_array().unwrap().len(), 1, "{j}");
    let whole = get(&addr, "/api/streams/cam/playback.mp4");
    let tmp = TempDir::new("playback-codec-out");
    let f = write(&tmp, "a.mp4", &whole.body);
    assert_eq!(decode_errors(&f), "");
    assert!((duration_s(&f) - 6.0).abs() < 0.05);
    let width = common::run(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=width",
                "-of",
                "csv=p=0",
            ])
            .arg(&f),
    );
    assert_eq!(width.trim(), "320");

    // From the odd segment on: it alone.
    let j = get(
        &addr,
        &format!("/api/streams/cam/playback.json?start={}", t0 + 6.5),
    )
    .json();
    assert!(
        (j["duration_seconds"].as_f64().unwrap() - 2.0).abs() < 0.05,
        "{j}"
    );
    assert!(
        (rfc3339_s(&j["start_time"]) - (t0 + 6.0)).abs() < 0.001,
        "{j}"
    );
}
