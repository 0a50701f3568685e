//! Headless Chromium through chromedriver's WebDriver API, spoken with the plain HTTP client.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{TempDir, http, session_for, wait_for};

/// Headless Chromium (Debian's `chromium`), driven through `chromedriver`'s WebDriver API with
/// the plain HTTP client above.
pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
    _profile: TempDir,
}

impl Browser {
    pub fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (`bash .ci/setup --test` installs chromium-driver)");
        let addr = format!("127.0.0.1:{port}");
        assert!(
            wait_for(Duration::from_secs(20), || std::net::TcpStream::connect(
                &addr
            )
            .is_ok()),
            "chromedriver listens"
        );
        let profile = TempDir::new("chromium");
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--autoplay-policy=no-user-gesture-required", "--window-size=1280,900",
                         format!("--user-data-dir={}", profile.path().display())],
            },
        }}});
        let r = http(
            &addr,
            "POST",
            "/session",
            &[("Content-Type", "application/json")],
            caps.to_string().as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let session = r.json()["value"]["sessionId"].as_str().unwrap().to_owned();
        Browser {
            driver,
            addr,
            session,
            _profile: profile,
        }
    }

    fn call(&self, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        let url = format!("/session/{}{path}", self.session);
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let r = http(
            &self.addr,
            method,
            &url,
            &[("Content-Type", "application/json")],
            &bytes,
        );
        assert_eq!(
            r.status,
            200,
            "{method} {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()["value"].clone()
    }

    /// Opens `http://{addr}/` holding the admin session of [`Daemon::http_addr`], as if the
    /// login page had been filled in (tests/auth.rs fills it in for real).
    pub fn goto_logged_in(&self, addr: &str, path: &str) {
        self.goto(&format!("http://{addr}/api/health"));
        let cookie = session_for(addr).expect("log in with Daemon::http_addr first");
        let (name, value) = cookie.split_once('=').unwrap();
        self.call(
            "POST",
            "/cookie",
            serde_json::json!({"cookie": {"name": name, "value": value, "path": "/",
                               "httpOnly": true, "sameSite": "Strict"}}),
        );
        self.goto(&format!("http://{addr}{path}"));
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", serde_json::json!({"url": url}));
    }

    /// Runs `script` as a function body; `arguments` are `args`, and the last one is the callback.
    pub fn run_async(&self, script: &str, args: serde_json::Value) -> serde_json::Value {
        self.call("POST", "/timeouts", serde_json::json!({"script": 60_000}));
        self.call(
            "POST",
            "/execute/async",
            serde_json::json!({"script": script, "args": args}),
        )
    }

    pub fn run(&self, script: &str, args: serde_json::Value) -> serde_json::Value {
        self.call(
            "POST",
            "/execute/sync",
            serde_json::json!({"script": script, "args": args}),
        )
    }

    /// The browser's console errors so far.
    pub fn console_errors(&self) -> Vec<String> {
        let r = http(
            &self.addr,
            "POST",
            &format!("/session/{}/se/log", self.session),
            &[("Content-Type", "application/json")],
            b"{\"type\":\"browser\"}",
        );
        if r.status != 200 {
            return Vec::new();
        }
        r.json()["value"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .map(|e| e["message"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn screenshot(&self, path: &Path) {
        let png = self.call("GET", "/screenshot", serde_json::Value::Null);
        std::fs::write(path, base64_decode(png.as_str().unwrap())).unwrap();
    }

    /// Runs a Chrome DevTools command (through chromedriver) on the current tab.
    pub fn cdp(&self, cmd: &str, params: serde_json::Value) -> serde_json::Value {
        self.call(
            "POST",
            "/goog/cdp/execute",
            serde_json::json!({"cmd": cmd, "params": params}),
        )
    }

    /// The first element matching `css`.
    pub fn find(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            "/element",
            serde_json::json!({"using": "css selector", "value": css}),
        );
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(|x| x.as_str())
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    /// A real click on the first element matching `css`, as a user makes it.
    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.call(
            "POST",
            &format!("/element/{e}/click"),
            serde_json::json!({}),
        );
    }

    /// A real click at viewport point (`x`, `y`).
    pub fn click_at(&self, x: i64, y: i64) {
        self.call(
            "POST",
            "/actions",
            serde_json::json!({"actions": [{"type": "pointer", "id": "mouse",
                "parameters": {"pointerType": "mouse"},
                "actions": [
                    {"type": "pointerMove", "x": x, "y": y, "origin": "viewport"},
                    {"type": "pointerDown", "button": 0},
                    {"type": "pointerUp", "button": 0}]}]}),
        );
    }

    /// Waits until `expr` (a JavaScript expression) is truthy.
    pub fn wait_until(&self, expr: &str, timeout: Duration) -> bool {
        wait_for(timeout, || {
            self.run(&format!("return !!({expr});"), serde_json::json!([]))
                .as_bool()
                .unwrap_or(false)
        })
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(
            &self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            &[],
            b"",
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
        .collect();
    clean
        .chunks(4)
        .flat_map(|c| {
            let n = c.iter().enumerate().fold(0u32, |acc, (i, &b)| {
                acc | (u32::from(val(b)) << (18 - 6 * i))
            });
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            bytes.into_iter().take(c.len().saturating_sub(1))
        })
        .collect()
}
