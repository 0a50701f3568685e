//! The admin pages in real Chromium: a camera added from the GStreamer RTSP test camera with
//! the form (tested first), watched recording, its retention changed, disabled and removed;
//! the config editor marking an error at its line.

mod common;

use std::time::Duration;

use common::{Browser, Daemon, RtspServer, TempDir, http, wait_for, write_config};
use serde_json::json;

fn wait(browser: &Browser, expr: &str, what: &str) {
    assert!(
        browser.wait_until(expr, Duration::from_secs(30)),
        "{what}: {expr}"
    );
}

fn set(browser: &Browser, css: &str, value: &str) {
    browser.run(
        "const [css, v] = arguments; const e = document.querySelector(css); e.value = v;",
        json!([css, value]),
    );
}

#[test]
fn a_camera_is_added_watched_changed_disabled_and_removed_from_the_browser() {
    let server = RtspServer::start(&["porch"]);
    let dir = TempDir::new("ui-admin");
    let cfg = write_config(dir.path(), "# no cameras yet\n");
    let mut d = Daemon::start(&cfg);
    let addr = d.http_addr();
    let browser = Browser::start();

    // The empty grid says how to begin.
    browser.goto_logged_in(&addr, "/");
    wait(
        &browser,
        "!!document.querySelector('#no-cameras a[href=\"#/cameras\"]')",
        "the empty state",
    );
    browser.click("#no-cameras a");
    wait(
        &browser,
        "document.body.dataset.ready === '#/cameras' && !!document.getElementById('camera-form')",
        "the cameras page",
    );

    // Test, then add.
    set(&browser, "#camera-form [name=id]", "porch");
    set(&browser, "#camera-form [name=name]", "Porch");
    set(&browser, "#camera-form [name=url]", &server.url("porch"));
    browser.click("#camera-form button.test");
    wait(
        &browser,
        "document.getElementById('probe-result').textContent.startsWith('It sends h264')",
        "the probe result",
    );
    browser.click("#camera-form button[type=submit]");
    wait(
        &browser,
        "!!document.querySelector('#cameras tr[data-stream=porch]')",
        "the new camera listed",
    );
    assert!(
        std::fs::read_to_string(&cfg)
            .unwrap()
            .contains("# no cameras yet\n")
    );
    assert!(
        wait_for(Duration::from_secs(30), || {
            http(&addr, "GET", "/api/streams", &[], b"").json()[0]["recorder"]["state"]
                == "recording"
        }),
        "{}\n{}",
        http(&addr, "GET", "/api/streams", &[], b"").json(),
        std::fs::read_to_string(&cfg).unwrap()
    );
    let porch = dir.path().join("recordings/porch");
    assert!(wait_for(Duration::from_secs(30), || std::fs::read_dir(
        &porch
    )
    .is_ok_and(|d| d.count() > 0)));

    // Change its retention with the edit form.
    browser.goto(&format!("http://{addr}/#/cameras"));
    wait(
        &browser,
        "!!document.querySelector('#cameras tr[data-stream=porch] button.edit')",
        "the edit button",
    );
    browser.click("#cameras tr[data-stream=porch] button.edit");
    wait(
        &browser,
        "document.querySelector('#camera-form h2').textContent.startsWith('Change')",
        "the edit form",
    );
    set(&browser, "#camera-form [name=retention_days]", "12");
    browser.click("#camera-form button[type=submit]");
    assert!(wait_for(Duration::from_secs(10), || {
        http(&addr, "GET", "/api/streams", &[], b"").json()[0]["retention_days"] == 12
    }));

    // Disable, then remove.
    wait(
        &browser,
        "(document.querySelector('#cameras tr[data-stream=porch] button.toggle') || {}).textContent === 'Disable'",
        "the toggle",
    );
    browser.click("#cameras tr[data-stream=porch] button.toggle");
    assert!(wait_for(Duration::from_secs(10), || {
        http(&addr, "GET", "/api/streams", &[], b"").json()[0]["enabled"] == false
    }));
    wait(
        &browser,
        "(document.querySelector('#cameras tr[data-stream=porch] button.toggle') || {}).textContent === 'Enable'",
        "the toggle after disabling",
    );
    browser.run("window.confirm = () => true;", json!([]));
    browser.click("#cameras tr[data-stream=porch] button.del");
    assert!(wait_for(Duration::from_secs(10), || {
        http(&addr, "GET", "/api/streams", &[], b"").json() == json!([])
    }));
    assert!(
        std::fs::read_to_string(&cfg)
            .unwrap()
            .contains("# no cameras yet\n")
    );

    // The editor: an error is marked at its line, and nothing is saved.
    browser.goto(&format!("http://{addr}/#/config"));
    wait(
        &browser,
        "!!document.getElementById('config-text') && document.getElementById('config-text').value.includes('[retention]')",
        "the editor",
    );
    let before = std::fs::read_to_string(&cfg).unwrap();
    let broken = before.replace("default_days = 0", "default_days = \"soon\"");
    let line = broken.lines().position(|l| l.contains("\"soon\"")).unwrap() + 1;
    set(&browser, "#config-text", &broken);
    browser.click("#config-save");
    wait(
        &browser,
        "document.querySelectorAll('#config-errors li').length === 1",
        "the error listed",
    );
    let marked = browser.run(
        "return [document.querySelector('#config-errors li').dataset.line, [...document.querySelectorAll('#config-lines .bad')].map(s => s.textContent.trim())];",
        json!([]),
    );
    assert_eq!(marked, json!([line.to_string(), [line.to_string()]]));
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), before);
    // Fixed and saved with Ctrl-S.
    set(
        &browser,
        "#config-text",
        &before.replace(
            "default_days = 0",
            "default_days = 0\n# saved from the browser",
        ),
    );
    browser.run(
        "document.getElementById('config-text').dispatchEvent(new KeyboardEvent('keydown', {key: 's', ctrlKey: true, bubbles: true}));",
        json!([]),
    );
    wait(
        &browser,
        "document.getElementById('config-status').textContent.startsWith('Saved and applied')",
        "the save",
    );
    assert!(
        std::fs::read_to_string(&cfg)
            .unwrap()
            .contains("# saved from the browser")
    );
    assert_eq!(browser.console_errors(), Vec::<String>::new());
}
