//! The HTTP API through a real HTTP client against the running daemon, on real segments.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use common::{Daemon, Resp, TempDir, corpus, http, write_config};
use serde_json::Value;
use wallflower_nvr::time::segment_name;

struct Fixture {
    dir: TempDir,
    _daemon: Daemon,
    addr: String,
}

impl Fixture {
    fn get(&self, path: &str) -> Resp {
        http(&self.addr, "GET", path, &[], b"")
    }

    fn recordings_dir(&self) -> PathBuf {
        self.dir.path().join("recordings")
    }
}

/// A daemon whose streams are disabled, over a disk of copied real segments:
/// `front` has 4 consecutive recordings starting 2026-03-28 22:59:55 UTC, one of which crosses
/// midnight in Europe/Berlin after the DST change; `back` has one.
fn fixture(tag: &str) -> Fixture {
    let dir = TempDir::new(tag);
    let srcs: Vec<&PathBuf> = corpus()
        .iter()
        .filter(|f| f.file_name().unwrap().to_str().unwrap().starts_with("20"))
        .collect();
    let t0 = wallflower_nvr::time::parse_segment_name("2026-03-28_22-59-55.mp4").unwrap();
    let rec = dir.path().join("recordings");
    std::fs::create_dir_all(rec.join("front")).unwrap();
    std::fs::create_dir_all(rec.join("back")).unwrap();
    for i in 0..4i64 {
        std::fs::copy(
            srcs[i as usize % srcs.len()],
            rec.join("front").join(segment_name(t0 + i * 3_000)),
        )
        .unwrap();
    }
    std::fs::copy(srcs[0], rec.join("back").join(segment_name(t0))).unwrap();
    let cfg = write_config(
        dir.path(),
        "[[streams]]\nid = \"front\"\nname = \"Front door\"\nenabled = false\nretention_days = 0\n\
         [[streams]]\nid = \"back\"\nenabled = false\nsegment_seconds = 600\n",
    );
    let mut daemon = Daemon::start(&cfg);
    let addr = daemon.http_addr();
    assert!(
        daemon
            .wait_log("backfill:", Duration::from_secs(20))
            .is_some()
    );
    Fixture {
        dir,
        _daemon: daemon,
        addr,
    }
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect()
}

fn assert_error(r: &Resp, status: u16) {
    assert_eq!(r.status, status, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(
        r.json()["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{:?}",
        r.json()
    );
}

#[test]
fn streams_recordings_and_dates() {
    let f = fixture("api-list");
    let streams = f.get("/api/streams").json();
    assert_eq!(streams.as_array().unwrap().len(), 2);
    let front = &streams[0];
    assert_eq!(front["id"], "front");
    assert_eq!(front["name"], "Front door");
    assert_eq!(front["enabled"], false);
    assert_eq!(front["retention_days"], 0);
    assert_eq!(front["segment_seconds"], 900);
    assert_eq!(front["recorder"]["state"], "disabled");
    assert_eq!(front["recorder"]["restarts"], 0);
    assert!(front["recorder"]["last_error"].is_null());
    assert_eq!(streams[1]["name"], "back", "the name defaults to the id");
    assert_eq!(streams[1]["segment_seconds"], 600);

    let all = f.get("/api/streams/front/recordings").json();
    assert_eq!(all.as_array().unwrap().len(), 4);
    let r0 = &all[0];
    assert_eq!(r0["stream_id"], "front");
    assert_eq!(r0["start_time"], "2026-03-28T22:59:55Z");
    assert_eq!(r0["file_path"], "front/2026-03-28_22-59-55.mp4");
    assert_eq!(r0["retention_locked"], false);
    let size = std::fs::metadata(f.recordings_dir().join("front/2026-03-28_22-59-55.mp4"))
        .unwrap()
        .len();
    assert_eq!(r0["file_size_bytes"], size);
    let dur = r0["duration_seconds"].as_f64().unwrap();
    assert!(dur > 0.5, "{r0}");
    let end: jiff::Timestamp = r0["end_time"].as_str().unwrap().parse().unwrap();
    let start: jiff::Timestamp = r0["start_time"].as_str().unwrap().parse().unwrap();
    let span_s = (end.as_microsecond() - start.as_microsecond()) as f64 / 1e6;
    assert!((span_s - dur).abs() < 0.000_002, "{span_s} vs {dur}");
    let keys: Vec<&String> = r0.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "duration_seconds",
            "end_time",
            "file_path",
            "file_size_bytes",
            "id",
            "retention_locked",
            "start_time",
            "stream_id"
        ]
    );

    // Overlap of a window, with both spellings and both time forms; oldest first.
    let all_ids = ids(&all);
    let w = f
        .get("/api/streams/front/recordings?start=2026-03-28T22:59:59Z&end=2026-03-28T23:00:01.5Z")
        .json();
    assert_eq!(ids(&w), all_ids[1..3].to_vec());
    let unix = 1_774_738_799; // 2026-03-28T22:59:59Z
    let w2 = f
        .get(&format!(
            "/api/streams/front/recordings?start_time={unix}&end_time=2026-03-28T23%3A00%3A01.5Z"
        ))
        .json();
    assert_eq!(w2, w);
    let none = f
        .get("/api/streams/front/recordings?start=2026-03-29T00:00:00Z")
        .json();
    assert_eq!(none, Value::Array(vec![]));

    // Europe/Berlin is UTC+1 until 01:00 UTC on the 29th: 22:59:55 UTC is 23:59:55 local, and
    // the footage runs past local midnight, so both days are marked.
    let days = f
        .get("/api/streams/front/recordings/dates?tz=Europe%2FBerlin")
        .json();
    assert_eq!(days, serde_json::json!(["2026-03-28", "2026-03-29"]));
    assert_eq!(
        f.get("/api/streams/front/recordings/dates").json(),
        serde_json::json!(["2026-03-28"])
    );
    let tokyo = f
        .get("/api/streams/back/recordings/dates?tz=Asia/Tokyo")
        .json();
    assert_eq!(tokyo, serde_json::json!(["2026-03-29"]));

    let one = f.get(&format!("/api/recordings/{}", all_ids[2])).json();
    assert_eq!(one, all[2]);
}

#[test]
fn bad_input_is_a_json_4xx() {
    let f = fixture("api-bad");
    for (path, status) in [
        ("/api/streams/nope/recordings", 404),
        ("/api/streams/nope/recordings/dates", 404),
        ("/api/streams/..%2F..%2Fetc/recordings", 404),
        ("/api/streams/front/recordings?start=yesterday", 400),
        (
            "/api/streams/front/recordings?end=2026-02-30T00:00:00Z",
            400,
        ),
        (
            "/api/streams/front/recordings?start=2026-03-29T00:00:00Z&end=2026-03-28T00:00:00Z",
            400,
        ),
        ("/api/streams/front/recordings/dates?tz=Mars%2FOlympus", 400),
        (
            "/api/streams/front/recordings/dates?tz=..%2F..%2Fetc%2Fpasswd",
            400,
        ),
        ("/api/recordings/999999", 404),
        ("/api/recordings/abc", 400),
        ("/api/recordings/-1/stream", 400),
        ("/api/recordings/..%2F..%2Fetc%2Fpasswd/stream", 400),
        ("/api/recordings/99999999999999999999999", 400),
        ("/no/such/thing", 404),
    ] {
        let r = f.get(path);
        assert_eq!(r.status, status, "{path}");
        assert_error(&r, status);
    }
    let id = ids(&f.get("/api/streams/front/recordings").json())[0];
    let path = format!("/api/recordings/{id}");
    let patch = |body: &[u8]| {
        http(
            &f.addr,
            "PATCH",
            &path,
            &[("Content-Type", "application/json")],
            body,
        )
    };
    for body in [
        &b"not json"[..],
        b"{}",
        b"{\"retention_locked\": 1}",
        b"{\"retention_locked\": true, \"x\": 1}",
        b"[]",
    ] {
        assert_error(&patch(body), 400);
    }
    assert_error(&patch(&vec![b' '; 100_000]), 413);
    // Still healthy after all of it.
    assert_eq!(f.get("/api/health").status, 200);
}

/// The top-level boxes of `data` without those of kind `kind`.
fn without_boxes(data: &[u8], kind: &[u8; 4]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let end = (at + size).min(data.len());
        if &data[at + 4..at + 8] != kind {
            out.extend_from_slice(&data[at..end]);
        }
        at = end;
    }
    out
}

/// A served segment is the file with a `sidx` per track after its header and no `mfra`.
fn assert_is_served_form_of(served: &[u8], file: &[u8]) {
    let kinds: Vec<[u8; 4]> = {
        let mut v = Vec::new();
        let mut at = 0;
        while at + 8 <= served.len() {
            v.push(served[at + 4..at + 8].try_into().unwrap());
            at += u32::from_be_bytes(served[at..at + 4].try_into().unwrap()) as usize;
        }
        v
    };
    let sidx = kinds.iter().filter(|k| *k == b"sidx").count();
    assert!(sidx >= 1, "one sidx per track");
    assert_eq!(&kinds[..2], [*b"ftyp", *b"moov"]);
    assert!(kinds[2..2 + sidx].iter().all(|k| k == b"sidx"));
    assert_eq!(&kinds[2 + sidx], b"moof");
    assert_eq!(without_boxes(served, b"sidx"), without_boxes(file, b"mfra"));
}

fn file_of(f: &Fixture, id: u64) -> (String, Vec<u8>) {
    let rec = f.get(&format!("/api/recordings/{id}")).json();
    let path = rec["file_path"].as_str().unwrap().to_owned();
    let data = std::fs::read(f.recordings_dir().join(&path)).unwrap();
    (path, data)
}

#[test]
fn segment_streaming_follows_rfc_9110() {
    let f = fixture("api-range");
    let id = ids(&f.get("/api/streams/front/recordings").json())[0];
    let (_, file_data) = file_of(&f, id);
    let url = format!("/api/recordings/{id}/stream");

    let full = f.get(&url);
    assert_eq!(full.status, 200);
    assert_is_served_form_of(&full.body, &file_data);
    let len = full.body.len();
    let served_file = f.dir.path().join("served.mp4");
    std::fs::write(&served_file, &full.body).unwrap();
    let rec = f.get(&format!("/api/recordings/{id}")).json();
    let want = rec["duration_seconds"].as_f64().unwrap();
    assert!((common::ffprobe_duration(&served_file).unwrap() - want).abs() < 0.0005);
    let data = full.body.clone();
    assert_eq!(full.header("content-type"), Some("video/mp4"));
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        full.header("content-length"),
        Some(len.to_string().as_str())
    );
    let etag = full.header("etag").unwrap().to_owned();
    let last_modified = full.header("last-modified").unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert!(last_modified.ends_with(" GMT"), "{last_modified}");

    let head = http(&f.addr, "HEAD", &url, &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(len.to_string().as_str())
    );
    assert!(head.body.is_empty());
    assert_eq!(head.header("etag"), Some(etag.as_str()));

    let range = |h: &str| http(&f.addr, "GET", &url, &[("Range", h)], b"");
    let cases = [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, len - 1),
        ("bytes=-100", len - 100, len - 1),
        ("bytes=10-999999999", 10, len - 1),
        (&format!("bytes={}-{}", len - 1, len - 1), len - 1, len - 1),
    ];
    for (h, a, b) in cases {
        let r = range(h);
        assert_eq!(r.status, 206, "{h}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {a}-{b}/{len}").as_str()),
            "{h}"
        );
        assert_eq!(r.body, &data[a..=b], "{h}");
        assert_eq!(
            r.header("content-length"),
            Some((b - a + 1).to_string().as_str())
        );
    }
    for h in [
        format!("bytes={len}-"),
        format!("bytes={}-{}", len + 10, len + 20),
        "bytes=-0".into(),
    ] {
        let r = range(&h);
        assert_eq!(r.status, 416, "{h}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes */{len}").as_str())
        );
    }
    // Several ranges, or nonsense: the whole file (RFC 9110 lets a server ignore Range).
    for h in [
        "bytes=0-1,4-5",
        "bytes=5-1",
        "pages=1-2",
        "bytes=abc",
        "bytes=0-1,".repeat(1000).as_str(),
    ] {
        let r = range(h);
        assert_eq!(r.status, 200, "{h}");
        assert_eq!(r.body.len(), len);
    }
    // If-Range: a matching validator keeps the range, a stale one gets the whole file.
    for (validator, want) in [
        (etag.as_str(), (206, 10)),
        (&last_modified, (206, 10)),
        ("\"stale\"", (200, len)),
    ] {
        let r = http(
            &f.addr,
            "GET",
            &url,
            &[("Range", "bytes=0-9"), ("If-Range", validator)],
            b"",
        );
        assert_eq!((r.status, r.body.len()), want, "If-Range: {validator}");
    }
}

#[test]
fn lock_blocks_delete_and_delete_removes_file_and_record() {
    let f = fixture("api-lock");
    let id = ids(&f.get("/api/streams/front/recordings").json())[1];
    let (path, _) = file_of(&f, id);
    let file = f.recordings_dir().join(&path);
    let url = format!("/api/recordings/{id}");
    let patch = |locked: bool| {
        http(
            &f.addr,
            "PATCH",
            &url,
            &[("Content-Type", "application/json")],
            format!("{{\"retention_locked\": {locked}}}").as_bytes(),
        )
    };

    let r = patch(true);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["retention_locked"], true);
    assert_eq!(r.json()["id"], id);
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o222,
        0,
        "the lock is the file's mode"
    );
    assert_eq!(f.get(&url).json()["retention_locked"], true);
    // The listing (asked for before, so possibly cached) shows the change too.
    let listed = f.get("/api/streams/front/recordings").json();
    assert_eq!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()["retention_locked"],
        true
    );
    assert_error(&http(&f.addr, "DELETE", &url, &[], b""), 409);
    assert!(file.exists());

    assert_eq!(patch(false).json()["retention_locked"], false);
    let r = http(&f.addr, "DELETE", &url, &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!({"status": "deleted", "id": id}));
    assert!(!file.exists());
    assert_error(&f.get(&url), 404);
    assert_error(&http(&f.addr, "DELETE", &url, &[], b""), 404);
    assert_eq!(
        f.get("/api/streams/front/recordings")
            .json()
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let metrics = String::from_utf8(f.get("/metrics").body).unwrap();
    assert!(
        metrics.contains("wallflower_retention_deletions_total{reason=\"manual\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_file_deleted_while_it_streams_ends_cleanly() {
    use std::io::{Read, Write};
    let f = fixture("api-delete-streaming");
    // A segment of several megabytes, so most of it is still unread when the file goes.
    let staged = f.dir.path().join("big.mp4");
    common::noise_segment(&staged, "320x240", 3.0);
    std::fs::rename(
        &staged,
        f.recordings_dir().join("back/2026-03-30_00-00-00.mp4"),
    )
    .unwrap();
    let listed = || {
        ids(&f
            .get("/api/streams/back/recordings?start=2026-03-30T00:00:00Z")
            .json())
    };
    assert!(common::wait_for(Duration::from_secs(10), || listed().len() == 1));
    let id = listed()[0];
    let (_, data) = file_of(&f, id);
    assert!(data.len() > 4 << 20, "{} bytes", data.len());
    let mut s = std::net::TcpStream::connect(&f.addr).unwrap();
    // A tiny receive window keeps most of the body in flight while the file goes.
    s.write_all(
        format!(
            "GET /api/recordings/{id}/stream HTTP/1.1\r\nHost: x\r\nCookie: {}\r\nConnection: close\r\n\r\n",
            common::session_for(&f.addr).unwrap()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut first = [0u8; 1024];
    let n = s.read(&mut first).unwrap();
    assert!(n > 0);
    let r = http(
        &f.addr,
        "DELETE",
        &format!("/api/recordings/{id}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200);
    let mut rest = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.read_to_end(&mut rest);
    let mut all = first[..n].to_vec();
    all.extend_from_slice(&rest);
    let body_at = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    // The open file is still read to its end.
    assert_is_served_form_of(&all[body_at..], &data);
    assert_eq!(f.get("/api/health").status, 200);
}

#[test]
fn health_and_metrics() {
    let f = fixture("api-health");
    std::fs::write(
        f.recordings_dir().join("back/2026-01-01_00-00-00.mp4"),
        b"junk that is not an mp4",
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let h = loop {
        let h = f.get("/api/health").json();
        if h["index"]["unindexable_files"] == 1 || std::time::Instant::now() > deadline {
            break h;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(h["status"], "degraded");
    assert_eq!(h["index"]["recordings"], 5);
    assert_eq!(h["index"]["unindexable_files"], 1);
    assert!(
        h["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().contains("could not be indexed")),
        "{h}"
    );
    let disk = &h["disk"];
    let (total, free) = (
        disk["total_bytes"].as_u64().unwrap(),
        disk["free_bytes"].as_u64().unwrap(),
    );
    assert!(total > 0 && free <= total);
    let pct = disk["free_percent"].as_f64().unwrap();
    assert!((pct - free as f64 * 100.0 / total as f64).abs() < 0.01);

    let m = f.get("/metrics");
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    let text = String::from_utf8(m.body).unwrap();
    let value = |line_start: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(line_start))
            .unwrap_or_else(|| panic!("{line_start} in {text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value("wallflower_recordings{stream=\"front\"}"), 4.0);
    assert_eq!(value("wallflower_recordings{stream=\"back\"}"), 1.0);
    let front_bytes: u64 = (0..4)
        .map(|i| {
            let name = segment_name(
                wallflower_nvr::time::parse_segment_name("2026-03-28_22-59-55.mp4").unwrap()
                    + i * 3000,
            );
            std::fs::metadata(f.recordings_dir().join("front").join(name))
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(
        value("wallflower_recording_bytes{stream=\"front\"}") as u64,
        front_bytes
    );
    assert_eq!(
        value("wallflower_recorder_restarts_total{stream=\"front\"}"),
        0.0
    );
    assert_eq!(
        value("wallflower_retention_deletions_total{reason=\"age\"}"),
        0.0
    );
    assert!(value("wallflower_disk_free_bytes") > 0.0);
    assert!(value("wallflower_index_size_bytes") > 0.0);
    assert_eq!(value("wallflower_index_unindexable_files"), 1.0);
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(l.starts_with("wallflower_"), "{l}");
    }

    let page = f.get("/");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let etag = page.header("etag").unwrap();
    let again = http(&f.addr, "GET", "/", &[("If-None-Match", etag)], b"");
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
}

/// In a real browser: a served segment reports its full duration at once, and seeks.
#[test]
fn a_served_segment_plays_and_seeks_in_chromium() {
    let f = fixture("api-chromium");
    let recs = f.get("/api/streams/front/recordings").json();
    let rec = &recs[0];
    let want = rec["duration_seconds"].as_f64().unwrap();
    let browser = common::Browser::start();
    browser.goto_logged_in(&f.addr, "/");
    let out = browser.run_async(
        r#"const [url, done] = arguments;
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
          v.currentTime = v.duration / 2;
          await once('seeked');
          out.middle = v.currentTime;
          v.currentTime = v.duration - 0.05;
          await once('seeked');
          out.end = v.currentTime;
          out.readyState = v.readyState;
          done(out);
        })();"#,
        serde_json::json!([format!("/api/recordings/{}/stream", rec["id"])]),
    );
    assert!(out.get("error").is_none(), "{out}");
    let duration = out["duration"].as_f64().unwrap();
    assert!(
        (duration - want).abs() < 0.1,
        "the browser says {duration} s, the index {want} s"
    );
    assert!(
        (out["middle"].as_f64().unwrap() - want / 2.0).abs() < 0.1,
        "{out}"
    );
    assert!(
        (out["end"].as_f64().unwrap() - (want - 0.05)).abs() < 0.1,
        "{out}"
    );
    assert!(out["readyState"].as_u64().unwrap() >= 1, "{out}");
}
