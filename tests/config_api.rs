//! The config over HTTP (SPEC §6) on the real daemon and its real inotify watch: the text and
//! its tag, validation with positions, saves guarded by If-Match, exactly one reload a save,
//! the old text kept, and what needs a restart.

mod common;

use std::time::Duration;

use common::{Daemon, TempDir, http, write_config};
use serde_json::json;

fn put(addr: &str, text: &str, tag: Option<&str>) -> common::Resp {
    let mut headers = vec![("Content-Type", "application/toml")];
    if let Some(t) = tag {
        headers.push(("If-Match", t));
    }
    http(addr, "PUT", "/api/config", &headers, text.as_bytes())
}

#[test]
fn the_config_is_read_validated_and_saved_with_its_tag() {
    let dir = TempDir::new("configapi");
    let cfg = write_config(
        dir.path(),
        "# the yard camera, installed in May\n[[streams]]\nid = \"yard\"\nurl = \"rtsp://127.0.0.1:9/none\"\nenabled = false\n",
    );
    let mut d = Daemon::start(&cfg);
    let addr = d.http_addr();

    let got = http(&addr, "GET", "/api/config", &[], b"");
    assert_eq!(got.status, 200);
    assert_eq!(got.header("cache-control"), Some("no-store"));
    let text = String::from_utf8(got.body.clone()).unwrap();
    assert_eq!(text, std::fs::read_to_string(&cfg).unwrap());
    let tag = got.header("etag").unwrap().to_owned();

    // Validation: every error with its line, column and key; nothing written.
    let bad = text.replace("enabled = false", "enabled = \"no\"\nbogus = 1");
    let v = http(&addr, "POST", "/api/config/validate", &[], bad.as_bytes()).json();
    let line = text.lines().position(|l| l == "enabled = false").unwrap() + 1;
    assert_eq!(
        v["errors"],
        json!([
            {"line": line, "col": 1, "key": "streams[0].enabled", "message": "expected true or false, found string"},
            {"line": line + 1, "col": 1, "key": "streams[0].bogus", "message": "unknown key"},
        ])
    );
    assert_eq!(
        http(&addr, "POST", "/api/config/validate", &[], text.as_bytes()).json(),
        json!({"errors": []})
    );

    // Saves: If-Match is required and must be current; an invalid text writes nothing.
    assert_eq!(put(&addr, &text, None).status, 428);
    assert_eq!(put(&addr, &text, Some("\"stale\"")).status, 412);
    let r = put(&addr, &bad, Some(&tag));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errors"].as_array().unwrap().len(), 2);
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), text);
    assert!(!dir.path().join("config.toml.prev").exists());

    // A valid save: applied by one reload, the file exactly as sent, the old one kept.
    let new = text.replace("enabled = false", "enabled = false\nretention_days = 3");
    let r = put(&addr, &new, Some(&tag));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let saved = r.json();
    assert_eq!(saved["applied"], true);
    assert_eq!(saved["restart_needed"], json!([]));
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), new);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("config.toml.prev")).unwrap(),
        text
    );
    let streams = http(&addr, "GET", "/api/streams", &[], b"").json();
    assert_eq!(streams[0]["retention_days"], 3);
    let new_tag = saved["etag"].as_str().unwrap().to_owned();
    assert_eq!(
        http(&addr, "GET", "/api/config", &[], b"").header("etag"),
        Some(new_tag.as_str())
    );
    // The old tag is stale now.
    assert_eq!(put(&addr, &text, Some(&tag)).status, 412);

    // A hand edit meanwhile makes the UI's tag stale too.
    std::fs::write(&cfg, format!("{new}# edited by hand\n")).unwrap();
    assert!(common::wait_for(Duration::from_secs(5), || {
        http(&addr, "GET", "/api/config", &[], b"").header("etag") != Some(new_tag.as_str())
    }));
    assert_eq!(put(&addr, &new, Some(&new_tag)).status, 412);

    // A key the running daemon cannot change is reported.
    let got = http(&addr, "GET", "/api/config", &[], b"");
    let text = String::from_utf8(got.body.clone()).unwrap();
    let moved = text.replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:1\"");
    let r = put(&addr, &moved, got.header("etag")).json();
    assert_eq!(r["restart_needed"], json!(["http.listen"]));

    // Two saves at once with the same tag: one wins, the other gets 412.
    let got = http(&addr, "GET", "/api/config", &[], b"");
    let tag = got.header("etag").unwrap().to_owned();
    let text = String::from_utf8(got.body.clone()).unwrap();
    let racers: Vec<_> = (0..2)
        .map(|i| {
            let (addr, tag) = (addr.clone(), tag.clone());
            let text = format!("{text}# writer {i}\n");
            std::thread::spawn(move || put(&addr, &text, Some(&tag)).status)
        })
        .collect();
    let mut codes: Vec<u16> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    codes.sort();
    assert_eq!(codes, [200, 412]);

    // Each save was exactly one reload.
    d.signal(common::Signal::SIGTERM);
    assert!(d.wait_log("stopped", Duration::from_secs(30)).is_some());
    let applying = d.log.iter().filter(|l| l.contains(": applying")).count();
    let unchanged = d.log.iter().filter(|l| l.contains(": unchanged")).count();
    // Four writes, four reloads: retention_days and http.listen change the config; the hand
    // edit and the race's winner only add comments.
    assert_eq!((applying, unchanged), (2, 2), "{:#?}", d.log);
}

#[test]
fn cameras_are_added_changed_and_removed_keeping_the_file_as_written() {
    let dir = TempDir::new("configstreams");
    let cfg = write_config(dir.path(), "# cameras below; keep this note\n");
    add_user_viewer(&cfg);
    let mut d = Daemon::start(&cfg);
    let addr = d.http_addr();
    let before = std::fs::read_to_string(&cfg).unwrap();
    let send =
        |m: &str, p: &str, b: serde_json::Value| http(&addr, m, p, &[], b.to_string().as_bytes());

    let r = send(
        "POST",
        "/api/streams",
        json!({"id": "porch", "url": "rtsp://admin:hunter2@127.0.0.1:9/s", "enabled": false}),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["url"], "rtsp://admin:***@127.0.0.1:9/s");
    let after_add = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        after_add.starts_with(&before),
        "the file before the new table is untouched"
    );
    for (b, want) in [
        (json!({"id": "porch", "url": "rtsp://x/y"}), 409),
        (json!({"id": "Bad Id", "url": "rtsp://x/y"}), 400),
        (json!({"id": "new"}), 400),
        (json!({"id": "new", "url": "http://x/y"}), 400),
        (
            json!({"id": "new", "url": "rtsp://x/y", "colour": "red"}),
            400,
        ),
    ] {
        let r = send("POST", "/api/streams", b.clone());
        assert_eq!(r.status, want, "{b}: {}", String::from_utf8_lossy(&r.body));
    }
    assert_eq!(
        std::fs::read_to_string(&cfg).unwrap(),
        after_add,
        "refused edits write nothing"
    );

    // Admins see the URL masked; viewers not at all.
    let listed = http(&addr, "GET", "/api/streams", &[], b"").json();
    assert_eq!(listed[0]["url"], "rtsp://admin:***@127.0.0.1:9/s");
    let vic = common::login(&addr, "vic", common::PASSWORD);
    let as_viewer = http(&addr, "GET", "/api/streams", &[("Cookie", &vic)], b"");
    assert!(as_viewer.json()[0].get("url").is_none());
    assert!(!String::from_utf8_lossy(&as_viewer.body).contains("hunter2"));

    let r = send("PATCH", "/api/streams/porch", json!({"retention_days": 9}));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["retention_days"], 9);
    assert_eq!(
        send("PATCH", "/api/streams/porch", json!({"retention_days": -1})).status,
        400
    );
    assert_eq!(send("PATCH", "/api/streams/nope", json!({})).status, 404);
    let streams = http(&addr, "GET", "/api/streams", &[], b"").json();
    assert_eq!(streams[0]["retention_days"], 9);

    let r = send("DELETE", "/api/streams/porch", json!(null));
    assert_eq!(r.status, 200);
    assert_eq!(
        std::fs::read_to_string(&cfg).unwrap().trim_end(),
        before.trim_end()
    );
    assert_eq!(
        http(&addr, "GET", "/api/streams", &[], b"").json(),
        json!([])
    );
    let audit = http(&addr, "GET", "/api/audit", &[], b"").json();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in ["stream_add", "stream_change", "stream_remove"] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    d.signal(common::Signal::SIGTERM);
    assert!(d.wait_log("stopped", Duration::from_secs(30)).is_some());
    assert!(!d.log.join("\n").contains("hunter2"));
}

fn add_user_viewer(cfg: &std::path::Path) {
    common::add_user(cfg, "vic", "viewer");
}

#[test]
fn a_kill_during_a_save_leaves_the_old_or_the_new_config_whole() {
    let dir = TempDir::new("configkill");
    let cfg = write_config(dir.path(), "# before\n");
    let old = std::fs::read_to_string(&cfg).unwrap();
    let new = format!("{old}# after: {}\n", "x".repeat(200_000));
    let mut seen_new = 0;
    for i in 0..8u64 {
        std::fs::write(&cfg, &old).unwrap();
        let mut d = Daemon::start(&cfg);
        let addr = d.http_addr();
        let tag = http(&addr, "GET", "/api/config", &[], b"")
            .header("etag")
            .unwrap()
            .to_owned();
        let (a, t, n) = (addr.clone(), tag.clone(), new.clone());
        let saver = std::thread::spawn(move || {
            // The connection dies with the daemon: any answer, or none, will do.
            let _ = std::panic::catch_unwind(|| put(&a, &n, Some(&t)));
        });
        std::thread::sleep(Duration::from_millis(i * 3));
        d.signal(common::Signal::SIGKILL);
        let _ = d.wait(Duration::from_secs(10));
        let _ = saver.join();
        let now = std::fs::read_to_string(&cfg).unwrap();
        assert!(
            now == old || now == new,
            "a mix after a kill at {} ms",
            i * 3
        );
        seen_new += usize::from(now == new);
        wallflower_nvr::config::Config::load(&cfg).unwrap();
    }
    eprintln!("the new config was whole after {seen_new} of 8 kills, the old one after the rest");
}
