//! Access (SPEC §5) on the real daemon over HTTP: every route against every kind of caller,
//! first-run setup and login throttling. tests/accounts.rs has users, tokens and the rest.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{ADMIN, Daemon, PASSWORD, TempDir, add_user, http, http_anon, login, write_config};
use serde_json::{Value, json};
use wallflower_nvr::http::{Owner, ROUTES};

/// What an allowed caller gets from each route, with harmless arguments (unknown ids, empty
/// bodies): `(method, path with arguments, pattern, viewer's answer, admin's answer)`.
/// Every route of the daemon must be here: see `the_table_covers_every_route`.
const TABLE: &[(&str, &str, &str, u16, u16)] = &[
    ("GET", "/api/streams", "/api/streams", 200, 200),
    (
        "GET",
        "/api/streams/none/recordings",
        "/api/streams/{id}/recordings",
        404,
        404,
    ),
    (
        "GET",
        "/api/streams/none/recordings/dates",
        "/api/streams/{id}/recordings/dates",
        404,
        404,
    ),
    (
        "GET",
        "/api/recordings/999999",
        "/api/recordings/{id}",
        404,
        404,
    ),
    (
        "PATCH",
        "/api/recordings/999999",
        "/api/recordings/{id}",
        0,
        400,
    ),
    (
        "DELETE",
        "/api/recordings/999999",
        "/api/recordings/{id}",
        0,
        404,
    ),
    (
        "GET",
        "/api/recordings/999999/stream",
        "/api/recordings/{id}/stream",
        404,
        404,
    ),
    (
        "HEAD",
        "/api/recordings/999999/stream",
        "/api/recordings/{id}/stream",
        404,
        404,
    ),
    (
        "GET",
        "/api/streams/none/playback.mp4",
        "/api/streams/{id}/playback.mp4",
        404,
        404,
    ),
    (
        "HEAD",
        "/api/streams/none/playback.mp4",
        "/api/streams/{id}/playback.mp4",
        404,
        404,
    ),
    (
        "GET",
        "/api/streams/none/playback.json",
        "/api/streams/{id}/playback.json",
        404,
        404,
    ),
    (
        "GET",
        "/api/streams/none/live.mp4",
        "/api/streams/{id}/live.mp4",
        404,
        404,
    ),
    ("GET", "/api/health", "/api/health", 200, 200),
    ("GET", "/metrics", "/metrics", 200, 200),
    ("GET", "/api/setup", "/api/setup", 200, 200),
    ("POST", "/api/setup", "/api/setup", 400, 400),
    ("POST", "/api/login", "/api/login", 400, 400),
    ("GET", "/api/me", "/api/me", 200, 200),
    ("GET", "/api/users", "/api/users", 0, 200),
    ("POST", "/api/users", "/api/users", 0, 400),
    // Another user's password: a viewer may only change their own.
    (
        "PUT",
        "/api/users/nobody/password",
        "/api/users/{name}/password",
        403,
        400,
    ),
    ("DELETE", "/api/users/nobody", "/api/users/{name}", 0, 404),
    ("GET", "/api/tokens", "/api/tokens", 0, 200),
    ("POST", "/api/tokens", "/api/tokens", 0, 400),
    ("DELETE", "/api/tokens/none", "/api/tokens/{id}", 0, 404),
    ("POST", "/api/sign", "/api/sign", 400, 400),
    ("GET", "/api/audit", "/api/audit", 0, 200),
    ("GET", "/api/config", "/api/config", 0, 200),
    // No If-Match: 428, and nothing is written.
    ("PUT", "/api/config", "/api/config", 0, 428),
    (
        "POST",
        "/api/config/validate",
        "/api/config/validate",
        0,
        200,
    ),
    ("POST", "/api/streams", "/api/streams", 0, 400),
    ("PATCH", "/api/streams/none", "/api/streams/{id}", 0, 400),
    ("DELETE", "/api/streams/none", "/api/streams/{id}", 0, 404),
    ("POST", "/api/sources/probe", "/api/sources/probe", 0, 400),
    (
        "GET",
        "/api/streams/none/snapshot.jpg",
        "/api/streams/{id}/snapshot.jpg",
        404,
        404,
    ),
    ("GET", "/ui/app.js", "/ui/{file}", 200, 200),
    ("GET", "/favicon.ico", "/favicon.ico", 204, 204),
    ("GET", "/", "/", 200, 200),
    // Last: it ends the session it is sent with.
    ("POST", "/api/logout", "/api/logout", 200, 200),
];

fn owner(method: &str, pattern: &str) -> Owner {
    ROUTES
        .iter()
        .find(|(m, p, _)| m.eq_ignore_ascii_case(method) && *p == pattern)
        .map(|(_, _, o)| *o)
        .unwrap_or_else(|| panic!("{method} {pattern} is not a route"))
}

#[test]
fn the_table_covers_every_route() {
    let routes: BTreeSet<(String, &str)> = ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_ascii_uppercase(), *p))
        .collect();
    let table: BTreeSet<(String, &str)> = TABLE
        .iter()
        .map(|(m, _, p, _, _)| (m.to_string(), *p))
        .collect();
    assert_eq!(
        routes, table,
        "a route without a row in TABLE, or a row without a route"
    );
}

fn token(addr: &str, role: &str) -> String {
    let r = http(
        addr,
        "POST",
        "/api/tokens",
        &[],
        json!({"name": format!("{role} script"), "role": role})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(&r.body));
    let t = r.json();
    assert!(t["id"].is_string());
    format!("Bearer {}", t["token"].as_str().unwrap())
}

#[test]
fn every_route_against_every_kind_of_caller() {
    let dir = TempDir::new("authtable");
    let cfg = write_config(dir.path(), "");
    add_user(&cfg, "vera", "viewer");
    let mut d = Daemon::start(&cfg);
    let addr = d.http_addr();
    let viewer_token = token(&addr, "viewer");
    let admin_token = token(&addr, "admin");
    let ended = login(&addr, ADMIN, PASSWORD);
    let r = http(&addr, "POST", "/api/logout", &[("Cookie", &ended)], b"");
    assert_eq!(r.status, 200);

    // Each caller: name, headers per request (sessions are made afresh, as logout ends them).
    type Who = Box<dyn Fn() -> Vec<(String, String)>>;
    let cookie = |user: &'static str| -> Who {
        let addr = addr.clone();
        let c = login(&addr, user, PASSWORD);
        Box::new(move || vec![("Cookie".into(), c.clone())])
    };
    let header =
        |k: &'static str, v: String| -> Who { Box::new(move || vec![(k.into(), v.clone())]) };
    let callers: Vec<(&str, Who)> = vec![
        ("nobody", Box::new(Vec::new)),
        ("viewer cookie", cookie("vera")),
        ("admin cookie", cookie(ADMIN)),
        ("viewer token", header("Authorization", viewer_token)),
        ("admin token", header("Authorization", admin_token)),
        ("ended session", header("Cookie", ended.clone())),
        (
            "forged session",
            header("Cookie", format!("wf_session={}", "ab".repeat(32))),
        ),
        (
            "forged token",
            header("Authorization", "Bearer wf_forged".into()),
        ),
        ("cross-site admin", {
            let c = login(&addr, ADMIN, PASSWORD);
            let host = addr.clone();
            Box::new(move || {
                vec![
                    ("Cookie".into(), c.clone()),
                    ("Origin".into(), "http://evil.example".into()),
                    ("Host".into(), host.clone()),
                ]
            })
        }),
        ("cross-site fetch", {
            let c = login(&addr, ADMIN, PASSWORD);
            Box::new(move || {
                vec![
                    ("Cookie".into(), c.clone()),
                    ("Sec-Fetch-Site".into(), "cross-site".into()),
                ]
            })
        }),
        // A forged login or setup from another site, with no session at all.
        ("cross-site nobody", {
            let host = addr.clone();
            Box::new(move || {
                vec![
                    ("Origin".into(), "http://evil.example".into()),
                    ("Host".into(), host.clone()),
                ]
            })
        }),
    ];

    let mut wrong = Vec::new();
    for (who, headers) in &callers {
        for &(method, path, pattern, as_viewer, as_admin) in TABLE {
            let unsafe_method = !matches!(method, "GET" | "HEAD");
            let o = owner(method, pattern);
            let identified_as = match *who {
                "nobody" | "ended session" | "forged session" | "forged token"
                | "cross-site nobody" => None,
                "viewer cookie" | "viewer token" => Some("viewer"),
                _ => Some("admin"),
            };
            let cross = who.starts_with("cross-site");
            let forged_token = *who == "forged token";
            let allowed = |role: &str| {
                if role == "viewer" {
                    if as_viewer == 0 { 403 } else { as_viewer }
                } else {
                    as_admin
                }
            };
            let want = match (o, identified_as) {
                _ if cross && unsafe_method => 403,
                (Owner::Public, Some(role)) => allowed(role),
                (Owner::Public, None) => as_admin,
                (_, None) if forged_token => 401,
                (_, None) => 401,
                (_, Some(role)) => allowed(role),
            };
            // A public route answers a forged or ended credential as if none was sent; the
            // setup routes answer as for anybody (setup is done: 409 for a well-formed body).
            let hs = headers();
            let hs: Vec<(&str, &str)> = hs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let got = if hs.iter().any(|(k, _)| *k == "Host") {
                http_with_host(&addr, method, path, &hs)
            } else {
                http_anon(&addr, method, path, &hs, b"").status
            };
            if got != want {
                wrong.push(format!(
                    "{who:>16}: {method} {path}: got {got}, want {want}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(d.wait(Duration::from_secs(30)).success());
}

/// A request whose `Host` header is given (the helper's own would come first).
fn http_with_host(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}

fn post(addr: &str, path: &str, headers: &[(&str, &str)], body: Value) -> common::Resp {
    http_anon(addr, "POST", path, headers, body.to_string().as_bytes())
}

#[test]
fn setup_mode_takes_its_code_once_and_a_restart_makes_a_new_one() {
    let dir = TempDir::new("authsetup");
    let cfg = write_config(dir.path(), "");
    // No user: this box is fresh.
    std::fs::remove_file(dir.path().join("state/accounts.json")).unwrap();
    let code_file = dir.path().join("state/setup-code");
    let mut d = Daemon::start(&cfg);
    let line = d
        .wait_log("one-time setup code", Duration::from_secs(20))
        .unwrap();
    let first = std::fs::read_to_string(&code_file)
        .unwrap()
        .trim()
        .to_owned();
    assert!(line.contains(&first), "{line}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&code_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(d.wait(Duration::from_secs(30)).success());

    let mut d = Daemon::start(&cfg);
    assert!(
        d.wait_log("one-time setup code", Duration::from_secs(20))
            .is_some()
    );
    let addr = d.http_addr_open();
    let code = std::fs::read_to_string(&code_file)
        .unwrap()
        .trim()
        .to_owned();
    assert_ne!(code, first, "a restart makes a new code");
    assert_eq!(
        http_anon(&addr, "GET", "/api/setup", &[], b"").json()["needed"],
        true
    );
    // Everything else is closed meanwhile.
    assert_eq!(
        http_anon(&addr, "GET", "/api/streams", &[], b"").status,
        401
    );

    let body =
        |code: &str, user: &str, pw: &str| json!({"code": code, "username": user, "password": pw});
    let cases = [
        (body(&first, "ann", "a good password"), 403),
        (body("", "ann", "a good password"), 403),
        (body(&code, "ann", ""), 400),
        (body(&code, "ann", &"x".repeat(2000)), 400),
        (body(&code, "a/b", "a good password"), 400),
        (json!({"code": code}), 400),
    ];
    for (b, want) in cases {
        let r = post(&addr, "/api/setup", &[], b.clone());
        assert_eq!(r.status, want, "{b}: {}", String::from_utf8_lossy(&r.body));
        assert!(r.json()["error"].is_string());
    }
    assert_eq!(
        http_anon(&addr, "GET", "/api/setup", &[], b"").json()["needed"],
        true
    );
    let r = post(
        &addr,
        "/api/setup",
        &[],
        body(&code, "ann", "a good password"),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json(), json!({"username": "ann", "role": "admin"}));
    let cookie = r.header("set-cookie").unwrap().to_owned();
    assert!(cookie.starts_with("wf_session="), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "not over plain HTTP");
    let c = cookie.split(';').next().unwrap();
    let me = http_anon(&addr, "GET", "/api/me", &[("Cookie", c)], b"").json();
    assert_eq!(
        (&me["username"], &me["role"]),
        (&json!("ann"), &json!("admin"))
    );
    let again = post(
        &addr,
        "/api/setup",
        &[],
        body(&code, "eve", "a good password"),
    );
    assert_eq!(again.status, 409);
    assert!(!code_file.exists());
    assert_eq!(
        http_anon(&addr, "GET", "/api/setup", &[], b"").json()["needed"],
        false
    );
}

#[test]
fn logins_are_throttled_alike_for_unknown_users_and_wrong_passwords() {
    let dir = TempDir::new("auththrottle");
    let cfg = write_config(dir.path(), "");
    let mut d = Daemon::start(&cfg);
    let addr = d.http_addr();
    let wrong = post(
        &addr,
        "/api/login",
        &[],
        json!({"username": ADMIN, "password": "nope nope"}),
    );
    let unknown = post(
        &addr,
        "/api/login",
        &[],
        json!({"username": "ghost", "password": "nope nope"}),
    );
    assert_eq!((wrong.status, unknown.status), (401, 401));
    assert_eq!(wrong.body, unknown.body, "the same answer");
    for _ in 0..3 {
        let r = post(
            &addr,
            "/api/login",
            &[],
            json!({"username": ADMIN, "password": "x"}),
        );
        assert_eq!(r.status, 401);
    }
    let r = post(
        &addr,
        "/api/login",
        &[],
        json!({"username": ADMIN, "password": PASSWORD}),
    );
    assert_eq!(
        r.status, 429,
        "the sixth attempt waits, even with the right password"
    );
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=5).contains(&wait), "{wait}");
    assert!(r.json()["error"].is_string());
    // fail2ban's line: the user and the address.
    let line = d
        .wait_log("login failed for user \"ghost\"", Duration::from_secs(5))
        .unwrap();
    assert!(line.ends_with("from 127.0.0.1"), "{line}");
    // Malformed logins are 400 and cost no attempt.
    for body in [&b"{"[..], b"[]", b"{\"username\": 1}"] {
        assert_eq!(
            http_anon(&addr, "POST", "/api/login", &[], body).status,
            400
        );
    }
    std::thread::sleep(Duration::from_secs(wait));
    let r = post(
        &addr,
        "/api/login",
        &[],
        json!({"username": ADMIN, "password": PASSWORD}),
    );
    assert_eq!(r.status, 200);
    let audit = http(&addr, "GET", "/api/audit", &[], b"").json();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "login_failed").count(),
        5,
        "{actions:?}"
    );
}
