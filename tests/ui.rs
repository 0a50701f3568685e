//! The web UI in real headless Chromium (Debian's, through chromedriver) against the real
//! daemon: real segments made by ffmpeg for the recordings views, and real recording from the
//! GStreamer RTSP test camera for the live views. Clicks are real WebDriver input.
//!
//! Each test saves screenshots under `target/ui-screenshots/` to look at by hand.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Browser, Daemon, RtspServer, TempDir, http, make_segment, wait_for, write_config};
use serde_json::{Value, json};
use wallflower_nvr::time::{parse_segment_name, segment_name};

fn shots() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("ui-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn ms(name: &str) -> i64 {
    parse_segment_name(&format!("{name}.mp4")).unwrap()
}

/// Footage of stream "yard" (UTC names):
/// - 2026-03-10 10:00:00 to 10:15:00, three 5-minute segments;
/// - 2026-03-12 14:59:50, 20 s: 23:59:50 in Tokyo, so it crosses local midnight there;
/// - 2026-03-20 03:00:00, 4 s.
fn yard(dir: &Path) {
    let cam = dir.join("recordings/yard");
    std::fs::create_dir_all(&cam).unwrap();
    let src = dir.join("five-minutes.mp4");
    make_segment(&src, "160x120", 300);
    for i in 0..3 {
        std::fs::copy(
            &src,
            cam.join(segment_name(ms("2026-03-10_10-00-00") + i * 300_000)),
        )
        .unwrap();
    }
    make_segment(&cam.join("2026-03-12_14-59-50.mp4"), "160x120", 20);
    make_segment(&cam.join("2026-03-20_03-00-00.mp4"), "160x120", 4);
}

/// Loads the page afresh (a new hash alone would not reload it) at `hash`.
fn open(browser: &Browser, addr: &str, hash: &str) {
    browser.goto("about:blank");
    browser.goto_logged_in(addr, &format!("/{hash}"));
    assert!(
        browser.wait_until(
            &format!("document.body.dataset.ready === {}", json!(hash)),
            Duration::from_secs(20)
        ),
        "the page for {hash} did not finish loading"
    );
}

fn marked_days(browser: &Browser) -> Vec<String> {
    let v = browser.run(
        "return [...document.querySelectorAll('.cal button.has')].map(b => b.dataset.day);",
        json!([]),
    );
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect()
}

fn in_zone(browser: &Browser, zone: &str) {
    browser.cdp("Emulation.setTimezoneOverride", json!({"timezoneId": zone}));
}

#[test]
fn recordings_views_calendar_timeline_player_and_clips() {
    let dir = TempDir::new("ui");
    yard(dir.path());
    let cfg = write_config(
        dir.path(),
        "[[streams]]\nid = \"yard\"\nname = \"Back yard\"\nurl = \"rtsp://127.0.0.1:9/none\"\nenabled = false\n",
    );
    let mut daemon = Daemon::start(&cfg);
    let addr = daemon.http_addr();
    assert!(
        daemon
            .wait_log("backfill:", Duration::from_secs(30))
            .is_some()
    );
    let browser = Browser::start();
    let shots = shots();

    // The calendar marks exactly the days with footage, in the browser's zone.
    in_zone(&browser, "Asia/Tokyo");
    open(&browser, &addr, "#/stream/yard/recordings/2026-03-12");
    assert_eq!(
        marked_days(&browser),
        ["2026-03-10", "2026-03-12", "2026-03-13", "2026-03-20"]
    );
    browser.screenshot(&shots.join("recordings-tokyo.png"));
    in_zone(&browser, "America/Los_Angeles");
    open(&browser, &addr, "#/stream/yard/recordings/2026-03-10");
    assert_eq!(
        marked_days(&browser),
        ["2026-03-10", "2026-03-12", "2026-03-19"]
    );
    // Clicking a day opens it.
    browser.click("[data-day='2026-03-19']");
    assert!(browser.wait_until(
        "document.body.dataset.ready === '#/stream/yard/recordings/2026-03-19' && document.querySelectorAll('tbody tr').length === 1",
        Duration::from_secs(10)
    ));

    // A click on the timeline plays that moment, within one GOP (1 s).
    in_zone(&browser, "UTC");
    open(&browser, &addr, "#/stream/yard/recordings/2026-03-10");
    let bar = browser.run(
        "const b = document.querySelector('.timeline'); const r = b.getBoundingClientRect();
         return {left: r.left, top: r.top, width: r.width, height: r.height,
                 start: +b.dataset.dayStart, end: +b.dataset.dayEnd};",
        json!([]),
    );
    let f = |k: &str| bar[k].as_f64().unwrap();
    let footage = (
        ms("2026-03-10_10-00-00") as f64,
        ms("2026-03-10_10-15-00") as f64,
    );
    let at = |t: f64| f("left") + (t - f("start")) / (f("end") - f("start")) * f("width");
    // A whole pixel inside the footage.
    let x = ((at(footage.0) + at(footage.1)) / 2.0).round();
    let clicked_ms = f("start") + (x - f("left")) / f("width") * (f("end") - f("start"));
    browser.click_at(x as i64, (f("top") + f("height") / 2.0) as i64);
    assert!(
        browser.wait_until(
            "(() => { const v = document.getElementById('player'); return v && v.dataset.src && !v.paused && v.readyState >= 3; })()",
            Duration::from_secs(20)
        ),
        "the click did not start playback"
    );
    // Where the player is, mapped to wall time by playback.json, independently of the UI.
    let state = browser.run(
        "const v = document.getElementById('player');
         return {src: v.dataset.src, t: v.currentTime, wall: +v.dataset.wallMs};",
        json!([]),
    );
    let src = state["src"].as_str().unwrap();
    let json_path = src
        .split_once(&addr)
        .unwrap()
        .1
        .replace("playback.mp4", "playback.json");
    let plan = http(&addr, "GET", &json_path, &[], b"").json();
    let wall_of = |t: f64| -> f64 {
        let spans = plan["spans"].as_array().unwrap();
        let s = spans
            .iter()
            .rev()
            .find(|s| s["media_start_seconds"].as_f64().unwrap() <= t)
            .unwrap();
        let start: jiff::Timestamp = s["start_time"].as_str().unwrap().parse().unwrap();
        start.as_millisecond() as f64 + (t - s["media_start_seconds"].as_f64().unwrap()) * 1000.0
    };
    let playing_at = wall_of(state["t"].as_f64().unwrap());
    assert!(
        (playing_at - clicked_ms).abs() < 1000.0 + 500.0,
        "clicked {clicked_ms}, playing {playing_at} ({state})"
    );
    assert!(
        (state["wall"].as_f64().unwrap() - playing_at).abs() < 1000.0,
        "{state}"
    );
    browser.screenshot(&shots.join("recordings-playing.png"));
    // On a phone-sized screen the same view stacks its panels.
    browser.cdp(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true}),
    );
    let widths = browser.run(
        "return [document.documentElement.scrollWidth, document.querySelector('.timeline').getBoundingClientRect().width];",
        json!([]),
    );
    let wide = browser.run(
        "return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 391).slice(0, 8).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right));",
        json!([]),
    );
    assert!(
        widths[0].as_f64().unwrap() <= 390.0 + 1.0,
        "the page scrolls sideways on a phone: {widths} {wide}"
    );
    assert!(widths[1].as_f64().unwrap() > 300.0, "{widths}");
    browser.screenshot(&shots.join("recordings-phone.png"));
    browser.cdp("Emulation.clearDeviceMetricsOverride", json!({}));

    // Playback runs across a segment boundary (10:05:00) without stopping.
    let boundary = ms("2026-03-10_10-05-00") as f64;
    let media_boundary = {
        let spans = plan["spans"].as_array().unwrap();
        let start: jiff::Timestamp = spans[0]["start_time"].as_str().unwrap().parse().unwrap();
        (boundary - start.as_millisecond() as f64) / 1000.0
    };
    let out = browser.run_async(
        "const [t, done] = arguments; const v = document.getElementById('player');
         v.currentTime = t - 0.6;
         v.addEventListener('seeked', () => setTimeout(() =>
           done({t: v.currentTime, paused: v.paused, wall: +v.dataset.wallMs}), 2500), {once: true});",
        json!([media_boundary]),
    );
    assert!(
        out["t"].as_f64().unwrap() > media_boundary + 1.0 && out["paused"] == false,
        "playback stopped at the boundary: {out}"
    );
    assert!(out["wall"].as_f64().unwrap() > boundary + 1000.0, "{out}");

    // Clips: lock blocks deletion; delete removes the clip from the list and from the disk.
    open(&browser, &addr, "#/stream/yard/recordings/2026-03-20");
    let id = browser.run(
        "return document.querySelector('tbody tr').dataset.id;",
        json!([]),
    );
    let id = id.as_str().unwrap().to_owned();
    let file = dir.path().join("recordings/yard/2026-03-20_03-00-00.mp4");
    browser.click("tbody tr .lock");
    assert!(browser.wait_until(
        "document.querySelector('tbody tr .lock').getAttribute('aria-pressed') === 'true'",
        Duration::from_secs(10)
    ));
    let rec = http(&addr, "GET", &format!("/api/recordings/{id}"), &[], b"").json();
    assert_eq!(rec["retention_locked"], true);
    assert!(std::fs::metadata(&file).unwrap().permissions().readonly());
    browser.run("window.confirm = () => true;", json!([]));
    let disabled = browser.run(
        "return document.querySelector('tbody tr .del').disabled;",
        json!([]),
    );
    assert_eq!(
        disabled,
        Value::Bool(true),
        "a locked clip offers no delete"
    );
    browser.run(
        "document.querySelector('tbody tr .del').click();",
        json!([]),
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(file.exists(), "a locked clip was deleted");
    browser.screenshot(&shots.join("clips-locked.png"));
    browser.click("tbody tr .lock");
    assert!(browser.wait_until(
        "document.querySelector('tbody tr .lock').getAttribute('aria-pressed') === 'false'",
        Duration::from_secs(10)
    ));
    browser.click("tbody tr .del");
    assert!(wait_for(Duration::from_secs(10), || !file.exists()));
    assert!(browser.wait_until(
        &format!("!document.querySelector('tr[data-id=\"{id}\"]')"),
        Duration::from_secs(10)
    ));
    assert_eq!(
        http(&addr, "GET", &format!("/api/recordings/{id}"), &[], b"").status,
        404
    );

    // The export link asks for the selected range as an attachment.
    open(&browser, &addr, "#/stream/yard/recordings/2026-03-10");
    let href = browser.run_async(
        "const [done] = arguments; const a = document.getElementById('export');
         a.addEventListener('click', e => { e.preventDefault(); done(a.href); }, {once: true});
         document.querySelector('.export button').click();",
        json!([]),
    );
    let href = href.as_str().unwrap();
    assert!(href.contains("download=1"), "{href}");
    let path = href.split_once(&addr).unwrap().1;
    let export = http(&addr, "GET", path, &[], b"");
    assert_eq!(export.status, 200);
    assert!(
        export
            .header("content-disposition")
            .unwrap()
            .starts_with("attachment")
    );

    assert_eq!(browser.console_errors(), Vec::<String>::new());
}

#[test]
fn grid_and_live_tab_with_a_recording_camera() {
    let server = RtspServer::start(&["door"]);
    let dir = TempDir::new("ui-live");
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[streams]]\nid = \"door\"\nname = \"Front door\"\nurl = \"{}\"\nsegment_seconds = 4\n\
             [[streams]]\nid = \"shed\"\nurl = \"rtsp://127.0.0.1:9/none\"\nenabled = false\n\
             [[streams]]\nid = \"gate\"\nurl = \"rtsp://127.0.0.1:9/none\"\n",
            server.url("door")
        ),
    );
    let mut daemon = Daemon::start(&cfg);
    let addr = daemon.http_addr();
    let door = dir.path().join("recordings/door");
    assert!(wait_for(Duration::from_secs(30), || std::fs::read_dir(
        &door
    )
    .is_ok_and(|mut d| d.next().is_some())));
    assert!(wait_for(Duration::from_secs(30), || {
        let s = http(&addr, "GET", "/api/streams", &[], b"").json();
        s[0]["recorder"]["state"] == "recording" && s[2]["recorder"]["state"] == "backoff"
    }));
    let browser = Browser::start();
    let shots = shots();

    // The grid: every stream with its state; the recording one shows live video.
    open(&browser, &addr, "#/");
    let states = browser.run(
        "return [...document.querySelectorAll('.card')].map(c => [c.dataset.stream, c.querySelector('.badge').dataset.state, !!c.querySelector('video')]);",
        json!([]),
    );
    assert_eq!(
        states,
        json!([
            ["door", "recording", true],
            ["shed", "disabled", false],
            ["gate", "backoff", false]
        ])
    );
    // A stream that cannot record says why, on its card and in the problems shown up top.
    let why = browser.run(
        "return [document.querySelector('.card[data-stream=gate] .err').textContent,
                 document.getElementById('problems').hidden,
                 document.getElementById('problems').textContent];",
        json!([]),
    );
    assert!(!why[0].as_str().unwrap().is_empty(), "{why}");
    assert_eq!(why[1], false, "{why}");
    assert!(why[2].as_str().unwrap().contains("stream gate"), "{why}");
    assert!(
        browser.wait_until(
            "(() => { const v = document.querySelector('.card video'); return v && v.readyState >= 2 && v.currentTime > 0; })()",
            Duration::from_secs(20)
        ),
        "the grid's live video does not play"
    );
    let disk = browser.run(
        "return document.getElementById('disk').textContent;",
        json!([]),
    );
    assert!(disk.as_str().unwrap().contains("% free"), "{disk}");
    browser.screenshot(&shots.join("grid.png"));

    // The live tab plays, and keeps playing.
    browser.click(".card[data-stream='door']");
    assert!(browser.wait_until(
        "document.body.dataset.ready === '#/stream/door'",
        Duration::from_secs(10)
    ));
    let out = browser.run_async(
        "const [done] = arguments; const v = document.querySelector('.live video');
         const go = () => { const t0 = v.currentTime; setTimeout(() => done({advanced: v.currentTime - t0, paused: v.paused}), 3000); };
         if (v.readyState >= 2 && !v.paused) go(); else v.addEventListener('playing', go, {once: true});",
        json!([]),
    );
    assert!(out["advanced"].as_f64().unwrap() > 2.0, "{out}");
    browser.screenshot(&shots.join("live.png"));
    assert_eq!(browser.console_errors(), Vec::<String>::new());
}
