//! Accounts on the real daemon over HTTP: users, tokens, signed URLs and the audit log; the
//! CLI; the demo's login; and camera credentials kept out of the log and the API.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{ADMIN, Daemon, PASSWORD, TempDir, add_user, http, http_anon, login, write_config};
use serde_json::{Value, json};

fn post(addr: &str, path: &str, headers: &[(&str, &str)], body: Value) -> common::Resp {
    http_anon(addr, "POST", path, headers, body.to_string().as_bytes())
}

#[test]
fn users_tokens_signed_urls_and_the_audit_log() {
    let dir = TempDir::new("authusers");
    let cfg = write_config(dir.path(), "");
    let mut d = Daemon::start(&cfg);
    let addr = d.http_addr();
    let send = |m: &str, p: &str, b: Value| http(&addr, m, p, &[], b.to_string().as_bytes());

    // Users: bad input is 4xx and changes nothing.
    assert_eq!(
        send(
            "POST",
            "/api/users",
            json!({"username": "vic", "password": "a good password", "role": "viewer"})
        )
        .status,
        201
    );
    for (b, want) in [
        (
            json!({"username": "vic", "password": "a good password"}),
            409,
        ),
        (json!({"username": "kim", "password": ""}), 400),
        (json!({"username": "kim", "password": "short"}), 400),
        (
            json!({"username": "kim", "password": "a good password", "role": "root"}),
            400,
        ),
        (json!({"username": "", "password": "a good password"}), 400),
        (
            json!({"username": "kim", "password": "a good password", "extra": 1}),
            400,
        ),
    ] {
        assert_eq!(send("POST", "/api/users", b.clone()).status, want, "{b}");
    }
    let users = http(&addr, "GET", "/api/users", &[], b"");
    assert!(
        !String::from_utf8_lossy(&users.body).contains("argon2"),
        "no hashes"
    );
    assert_eq!(users.json().as_array().unwrap().len(), 2);
    assert_eq!(
        send("DELETE", &format!("/api/users/{ADMIN}"), json!(null)).status,
        409,
        "the last admin"
    );

    // A viewer changes their own password (with the current one), not another's.
    let vic = login(&addr, "vic", "a good password");
    let own = |body: Value| {
        http(
            &addr,
            "PUT",
            "/api/users/vic/password",
            &[("Cookie", &vic)],
            body.to_string().as_bytes(),
        )
    };
    assert_eq!(own(json!({"password": "another password"})).status, 400);
    assert_eq!(
        own(json!({"password": "another password", "current_password": "wrong one"})).status,
        403
    );
    assert_eq!(
        own(json!({"password": "another password", "current_password": "a good password"})).status,
        200
    );
    assert_eq!(
        http(&addr, "GET", "/api/me", &[("Cookie", &vic)], b"").status,
        200,
        "this session stays"
    );
    login(&addr, "vic", "another password");

    // Tokens: /metrics needs one; a revoked token is refused.
    let r = send(
        "POST",
        "/api/tokens",
        json!({"name": "prometheus", "role": "viewer"}),
    );
    let t = r.json();
    let bearer = format!("Bearer {}", t["token"].as_str().unwrap());
    assert_eq!(http_anon(&addr, "GET", "/metrics", &[], b"").status, 401);
    let m = http_anon(&addr, "GET", "/metrics", &[("Authorization", &bearer)], b"");
    assert_eq!(m.status, 200);
    let listed = http(&addr, "GET", "/api/tokens", &[], b"");
    assert!(!String::from_utf8_lossy(&listed.body).contains(t["token"].as_str().unwrap()));
    assert_eq!(
        send(
            "DELETE",
            &format!("/api/tokens/{}", t["id"].as_str().unwrap()),
            json!(null)
        )
        .status,
        200
    );
    assert_eq!(
        http_anon(&addr, "GET", "/metrics", &[("Authorization", &bearer)], b"").status,
        401
    );

    // Signed URLs: for what a viewer may GET, and nothing else.
    let r = send(
        "POST",
        "/api/sign",
        json!({"path": "/api/streams", "expires_seconds": 60}),
    );
    assert_eq!(r.status, 200);
    let url = r.json()["url"].as_str().unwrap().to_owned();
    assert_eq!(http_anon(&addr, "GET", &url, &[], b"").status, 200);
    assert_eq!(
        http_anon(
            &addr,
            "GET",
            &url.replace("/api/streams", "/api/users"),
            &[],
            b""
        )
        .status,
        401
    );
    let sig_at = url.find("wf_sig=").unwrap() + 7;
    let mut forged = url.clone();
    forged.replace_range(
        sig_at..sig_at + 1,
        if &url[sig_at..sig_at + 1] == "0" {
            "1"
        } else {
            "0"
        },
    );
    assert_eq!(http_anon(&addr, "GET", &forged, &[], b"").status, 401);
    assert_eq!(http_anon(&addr, "DELETE", &url, &[], b"").status, 403);
    for bad in [
        json!({"path": "/api/users"}),
        json!({"path": "https://x/api/streams"}),
        json!({"path": "/api/streams", "expires_seconds": 0}),
        json!({"path": url}),
    ] {
        assert_eq!(send("POST", "/api/sign", bad.clone()).status, 400, "{bad}");
    }

    // The audit log saw all of it.
    let audit = http(&addr, "GET", "/api/audit", &[], b"").json();
    let actions: BTreeSet<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "user_add",
        "login",
        "user_password",
        "token_add",
        "token_delete",
    ] {
        assert!(actions.contains(a), "{a} missing from {actions:?}");
    }
    let entry = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "token_add")
        .unwrap();
    assert_eq!(entry["user"], ADMIN);
    assert_eq!(entry["address"], "127.0.0.1");
    assert!(http(&addr, "GET", "/api/audit?start=x", &[], b"").status == 400);

    // `user list` at the console; `user add` while the daemon runs takes effect at once.
    let list = Command::new(common::bin())
        .args(["user", "list", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&list.stdout),
        format!("{ADMIN}\tadmin\nvic\tviewer\n")
    );
    add_user(&cfg, "late", "viewer");
    assert!(common::wait_for(Duration::from_secs(5), || {
        post(
            &addr,
            "/api/login",
            &[],
            json!({"username": "late", "password": PASSWORD}),
        )
        .status
            == 200
    }));
    let mut dup = Command::new(common::bin())
        .args(["user", "add", "late", "-c"])
        .arg(&cfg)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(dup.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let dup = dup.wait_with_output().unwrap();
    assert_eq!(dup.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("exists"));
    // An edited config file is applied, and the audit log says so.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!("{text}[[streams]]\nid = \"new\"\nenabled = false\n"),
    )
    .unwrap();
    assert!(d.wait_log(": applying", Duration::from_secs(10)).is_some());
    let audit = http(&addr, "GET", "/api/audit", &[], b"").json();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "config_apply" && e["user"] == "config file")
    );
    // No secret reached the log.
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(d.wait_log("stopped", Duration::from_secs(30)).is_some());
    let log = d.log.join("\n");
    for secret in [
        PASSWORD,
        "a good password",
        "another password",
        t["token"].as_str().unwrap(),
    ] {
        assert!(!log.contains(secret), "{secret:?} is in the log");
    }
}

#[test]
fn camera_credentials_reach_neither_the_log_nor_viewers() {
    let dir = TempDir::new("authsecrets");
    let cfg = write_config(
        dir.path(),
        "[[streams]]\nid = \"cam\"\nurl = \"rtsp://admin:hunter2@127.0.0.1:9/none\"\n",
    );
    let mut d = Daemon::start(&cfg);
    let addr = d.http_addr();
    assert!(
        d.wait_log("restarting in", Duration::from_secs(30))
            .is_some()
    );
    let streams = http(&addr, "GET", "/api/streams", &[], b"");
    let error = streams.json()[0]["recorder"]["last_error"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        error.contains("127.0.0.1"),
        "the error still names the camera: {error}"
    );
    let health = http_anon(&addr, "GET", "/api/health", &[], b"");
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(d.wait_log("stopped", Duration::from_secs(30)).is_some());
    for (what, text) in [
        (
            "/api/streams",
            String::from_utf8_lossy(&streams.body).into_owned(),
        ),
        (
            "/api/health",
            String::from_utf8_lossy(&health.body).into_owned(),
        ),
        ("the log", d.log.join("\n")),
    ] {
        assert!(
            !text.contains("hunter2"),
            "the camera password is in {what}: {text}"
        );
    }
}

#[test]
fn demo_prints_a_login_that_works() {
    let dir = TempDir::new("authdemo");
    let mut d = Daemon::start_with(
        Command::new(common::bin())
            .args(["demo", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path()),
    );
    let line = d
        .wait_log(
            "demo: log in as admin with the password ",
            Duration::from_secs(20),
        )
        .unwrap();
    let password = line.rsplit(' ').next().unwrap().to_owned();
    let addr = d.http_addr_open();
    assert_eq!(
        http_anon(&addr, "GET", "/api/setup", &[], b"").json()["needed"],
        false
    );
    let cookie = login(&addr, "admin", &password);
    let streams = http(&addr, "GET", "/api/streams", &[("Cookie", &cookie)], b"").json();
    assert_eq!(streams[0]["id"], "demo");
    assert!(!d.log.iter().any(|l| l.contains("setup code")));
}

#[test]
fn accounts_off_make_everyone_an_admin_and_say_so() {
    let dir = TempDir::new("authoff");
    let cfg = write_config(dir.path(), "");
    std::fs::remove_file(dir.path().join("state/accounts.json")).unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}[auth]\nenabled = false\n")).unwrap();
    let mut d = Daemon::start(&cfg);
    assert!(
        d.wait_log("auth: disabled", Duration::from_secs(20))
            .is_some()
    );
    let addr = d.http_addr_open();
    let setup = http_anon(&addr, "GET", "/api/setup", &[], b"").json();
    assert_eq!(setup["needed"], false, "{setup}");
    assert_eq!(setup["me"]["role"], "admin");
    assert_eq!(
        http_anon(&addr, "GET", "/api/streams", &[], b"").status,
        200
    );
    assert_eq!(http_anon(&addr, "GET", "/api/users", &[], b"").status, 200);
    assert_eq!(http_anon(&addr, "GET", "/metrics", &[], b"").status, 200);
}
