//! Accounts in real Chromium: the first-run setup page, live and recorded video through the
//! session cookie, the admin page, logout, and a viewer's page without admin controls.

mod common;

use std::time::Duration;

use common::{Browser, Daemon, RtspServer, TempDir, http_anon, wait_for, write_config};
use serde_json::json;

/// Fills the form on the page and submits it.
fn fill(browser: &Browser, form: &str, values: serde_json::Value) {
    browser.run(
        "const [sel, values] = arguments; const f = document.querySelector(sel);
         for (const [k, v] of Object.entries(values)) f.querySelector(`[name=${k}]`).value = v;
         f.requestSubmit();",
        json!([form, values]),
    );
}

fn wait(browser: &Browser, expr: &str, what: &str) {
    assert!(
        browser.wait_until(expr, Duration::from_secs(20)),
        "{what}: {expr}"
    );
}

/// Whether the `<video>` made from `url` on the page plays for a second.
fn plays(browser: &Browser, url: &str) -> serde_json::Value {
    browser.run_async(
        "const [url, done] = arguments; const v = document.createElement('video');
         v.muted = true; v.src = url; document.body.append(v);
         v.addEventListener('error', () => done({error: String(v.error && v.error.message)}));
         v.play().then(() => setTimeout(() => { done({t: v.currentTime}); v.remove(); }, 1500),
                       e => done({error: String(e)}));",
        json!([url]),
    )
}

#[test]
fn setup_login_video_admin_logout_and_a_viewers_page() {
    let server = RtspServer::start(&["door"]);
    let dir = TempDir::new("ui-auth");
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[streams]]\nid = \"door\"\nurl = \"{}\"\nsegment_seconds = 4\n",
            server.url("door")
        ),
    );
    std::fs::remove_file(dir.path().join("state/accounts.json")).unwrap();
    let mut d = Daemon::start(&cfg);
    let addr = d.http_addr_open();
    let code = std::fs::read_to_string(dir.path().join("state/setup-code")).unwrap();
    let door = dir.path().join("recordings/door");
    assert!(wait_for(Duration::from_secs(30), || std::fs::read_dir(
        &door
    )
    .is_ok_and(|d| d.count() >= 2)));

    // First visit: the setup page. A wrong code is refused on the page.
    let browser = Browser::start();
    browser.goto(&format!("http://{addr}/"));
    wait(
        &browser,
        "document.body.dataset.ready === 'login' && !!document.querySelector('form.account [name=code]')",
        "the setup page",
    );
    fill(
        &browser,
        "form.account",
        json!({"code": "AAAA-AAAA-AAAA", "username": "ann", "password": "ann's password"}),
    );
    wait(
        &browser,
        "document.getElementById('form-error').textContent.includes('setup code')",
        "a wrong code says so",
    );
    fill(
        &browser,
        "form.account",
        json!({"code": code.trim(), "username": "ann", "password": "ann's password"}),
    );
    wait(
        &browser,
        "document.body.dataset.ready === '#/' && !!document.querySelector('.card')",
        "the grid after setup",
    );
    let who = browser.run(
        "return document.getElementById('whoami').textContent;",
        json!([]),
    );
    assert_eq!(who, "ann (admin)");

    // Live and recorded video play through the cookie alone.
    let live = plays(&browser, "/api/streams/door/live.mp4");
    assert!(live["t"].as_f64().unwrap_or(0.0) > 0.0, "live: {live}");
    let start = oldest_start_s(&door);
    let rec = plays(
        &browser,
        &format!("/api/streams/door/playback.mp4?start={start}"),
    );
    assert!(rec["t"].as_f64().unwrap_or(0.0) > 0.0, "playback: {rec}");
    // The same URLs without the cookie are refused.
    assert_eq!(
        http_anon(&addr, "GET", "/api/streams/door/playback.json", &[], b"").status,
        401
    );

    // The admin page adds a viewer; the audit log shows the setup.
    browser.goto(&format!("http://{addr}/#/admin"));
    wait(
        &browser,
        "document.body.dataset.ready === '#/admin' && !!document.getElementById('users')",
        "the admin page",
    );
    fill(
        &browser,
        "#add-user",
        json!({"username": "vic", "password": "vic's password"}),
    );
    wait(
        &browser,
        "!!document.querySelector('#users tr[data-user=vic]')",
        "the new user listed",
    );
    let audit = browser.run(
        "return document.getElementById('audit').textContent;",
        json!([]),
    );
    assert!(audit.as_str().unwrap().contains("setup"), "{audit}");
    fill(&browser, "#add-token", json!({"name": "prometheus"}));
    wait(
        &browser,
        "(document.querySelector('#new-token code') || {}).textContent?.startsWith('wf_')",
        "the token shown once",
    );

    // Log out: the login page, and the API refuses the old cookie.
    browser.click("#logout");
    wait(
        &browser,
        "document.body.dataset.ready === 'login' && !!document.querySelector('form.account [name=username]')",
        "the login page",
    );
    let me = browser.run_async(
        "const [done] = arguments; fetch('/api/me').then(r => done(r.status));",
        json!([]),
    );
    assert_eq!(me, 401);

    // The viewer: video, but no lock, delete or admin controls anywhere.
    fill(
        &browser,
        "form.account",
        json!({"username": "vic", "password": "vic's password"}),
    );
    wait(
        &browser,
        "document.body.dataset.ready === '#/' && !!document.querySelector('.card')",
        "the viewer's grid",
    );
    let day = start_day(&door);
    browser.goto(&format!("http://{addr}/#/stream/door/recordings/{day}"));
    wait(
        &browser,
        "document.body.dataset.ready.startsWith('#/stream/door/recordings') && document.querySelectorAll('tbody tr').length > 0",
        "the viewer's clips",
    );
    let controls = browser.run(
        "return [document.querySelectorAll('button.lock, button.del').length, !!document.getElementById('admin-link'),
                 document.querySelectorAll('a.download').length > 0, document.getElementById('whoami').textContent];",
        json!([]),
    );
    assert_eq!(controls, json!([0, false, true, "vic (viewer)"]));
    let rec = plays(
        &browser,
        &format!("/api/streams/door/playback.mp4?start={start}"),
    );
    assert!(
        rec["t"].as_f64().unwrap_or(0.0) > 0.0,
        "viewer playback: {rec}"
    );
    // Asked for by hand, the admin page shows the viewer nothing of it.
    browser.goto(&format!("http://{addr}/#/admin"));
    wait(
        &browser,
        "document.body.dataset.ready === '#/admin'",
        "the viewer's #/admin",
    );
    assert_eq!(
        browser.run("return !!document.getElementById('users');", json!([])),
        false
    );

    // The two refusals this test asked for (the wrong setup code, /api/me after logout) are
    // logged by Chromium as failed loads; nothing else may be.
    let asked = [
        "/api/me - Failed to load resource: the server responded with a status of 401 (Unauthorized)",
        "/api/setup - Failed to load resource: the server responded with a status of 403 (Forbidden)",
    ];
    let errors: Vec<String> = browser
        .console_errors()
        .into_iter()
        .filter(|e| !asked.iter().any(|a| e.ends_with(a)))
        .collect();
    assert_eq!(errors, Vec::<String>::new());
}

/// The start of the oldest segment, as Unix seconds, from its file name.
fn oldest_start_s(dir: &std::path::Path) -> i64 {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    wallflower_nvr::time::parse_segment_name(&names[0]).unwrap() / 1000
}

/// The local (browser) calendar day of the oldest segment: the test runs in UTC.
fn start_day(dir: &std::path::Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names[0][..10].to_owned()
}
