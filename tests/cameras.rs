//! What a camera sends before it is saved, and snapshots, with the GStreamer RTSP test camera
//! and real ffmpeg: `POST /api/sources/probe` and `GET /api/streams/{id}/snapshot.jpg`.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, RtspServer, TempDir, http, wait_for, write_config};
use serde_json::json;

fn probe(addr: &str, url: &str) -> (serde_json::Value, Duration) {
    let t0 = Instant::now();
    let r = http(
        addr,
        "POST",
        "/api/sources/probe",
        &[],
        json!({"url": url}).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    (r.json(), t0.elapsed())
}

/// The width and height of a baseline JPEG, from its SOF0 marker.
fn jpeg_size(b: &[u8]) -> (u16, u16) {
    assert_eq!(&b[..2], [0xFF, 0xD8], "a JPEG");
    let mut i = 2;
    while i + 9 < b.len() {
        let (marker, len) = (b[i + 1], u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize);
        if marker == 0xC0 {
            let h = u16::from_be_bytes([b[i + 5], b[i + 6]]);
            let w = u16::from_be_bytes([b[i + 7], b[i + 8]]);
            return (w, h);
        }
        i += 2 + len;
    }
    panic!("no SOF0 in the JPEG");
}

#[test]
fn a_camera_is_probed_before_it_is_saved_and_its_snapshots_are_jpegs() {
    let server = RtspServer::start(&["door"]);
    let dir = TempDir::new("cameras");
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[streams]]\nid = \"door\"\nurl = \"{}\"\nsegment_seconds = 2\n",
            server.url("door")
        ),
    );
    let mut d = Daemon::start(&cfg);
    let addr = d.http_addr();

    let (v, took) = probe(&addr, &server.url("door"));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(
        (&v["video_codec"], &v["audio_codec"]),
        (&json!("h264"), &json!("aac")),
        "{v}"
    );
    assert!(
        v["width"].as_u64().unwrap() > 0 && v["fps"].as_f64().unwrap() > 0.0,
        "{v}"
    );
    assert!(took < Duration::from_secs(15));
    for url in [
        "rtsp://admin:hunter2@127.0.0.1:9/none".to_owned(),
        server.url("no-such-path"),
        "http://127.0.0.1:9/x".to_owned(),
        "not a url".to_owned(),
    ] {
        let (v, took) = probe(&addr, &url);
        assert_eq!(v["ok"], false, "{url}: {v}");
        let why = v["error"].as_str().unwrap();
        assert!(!why.is_empty() && !why.contains("hunter2"), "{url}: {why}");
        assert!(took < Duration::from_secs(15), "{url} took {took:?}");
    }
    let bad = http(&addr, "POST", "/api/sources/probe", &[], b"{\"uri\": 1}");
    assert_eq!(bad.status, 400);

    // The newest keyframe, while the camera records.
    let door = dir.path().join("recordings/door");
    assert!(wait_for(Duration::from_secs(30), || std::fs::read_dir(
        &door
    )
    .is_ok_and(|d| d.count() >= 3)));
    let snap = http(
        &addr,
        "GET",
        "/api/streams/door/snapshot.jpg?width=320",
        &[],
        b"",
    );
    assert_eq!(snap.status, 200, "{}", String::from_utf8_lossy(&snap.body));
    assert_eq!(snap.header("content-type"), Some("image/jpeg"));
    assert_eq!(jpeg_size(&snap.body).0, 320);

    // At a time: the keyframe at or before it, from the recording that holds it.
    let recs = http(&addr, "GET", "/api/streams/door/recordings", &[], b"").json();
    let start = recs[0]["start_time"].as_str().unwrap().to_owned();
    let at = http(
        &addr,
        "GET",
        &format!("/api/streams/door/snapshot.jpg?time={start}"),
        &[],
        b"",
    );
    assert_eq!(at.status, 200, "{}", String::from_utf8_lossy(&at.body));
    assert_eq!(jpeg_size(&at.body).0, 640, "the default width");
    for (q, want) in [
        ("width=5", 400),
        ("width=x", 400),
        ("time=yesterday", 400),
        ("time=1000", 404),
    ] {
        let r = http(
            &addr,
            "GET",
            &format!("/api/streams/door/snapshot.jpg?{q}"),
            &[],
            b"",
        );
        assert_eq!(r.status, want, "{q}");
    }
    assert_eq!(
        http(&addr, "GET", "/api/streams/nope/snapshot.jpg", &[], b"").status,
        404
    );
}
