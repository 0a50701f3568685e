//! The plain HTTP/1.1 client of the tests, and logging in: the admin of every config the helper
//! writes, and the session cookie that [`http`] then sends.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Daemon, bin};

/// The admin every config of [`write_config`] has; [`Daemon::http_addr`] logs in as them, and
/// [`http`] then sends their session cookie.
pub const ADMIN: &str = "admin";
pub const PASSWORD: &str = "test password";

/// `wallflower-nvr user add NAME --role ROLE` with [`PASSWORD`].
pub fn add_user(config: &Path, name: &str, role: &str) {
    let mut child = Command::new(bin())
        .args(["user", "add", name, "--role", role, "-c"])
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    assert!(child.wait().unwrap().success(), "user add {name}");
}

/// The session cookies of the daemons this test process logged in to, by address.
/// (address, daemon pid, cookie): a later daemon on a reused port logs in afresh.
static SESSIONS: Mutex<Vec<(String, u32, String)>> = Mutex::new(Vec::new());

pub fn session_for(addr: &str) -> Option<String> {
    SESSIONS
        .lock()
        .unwrap()
        .iter()
        .find(|(a, _, _)| a == addr)
        .map(|(_, _, c)| c.clone())
}

/// Logs in as `user` and returns the `Cookie` header value for the session.
pub fn login(addr: &str, user: &str, password: &str) -> String {
    let body = serde_json::json!({"username": user, "password": password}).to_string();
    let r = http_anon(addr, "POST", "/api/login", &[], body.as_bytes());
    assert_eq!(
        r.status,
        200,
        "login as {user}: {}",
        String::from_utf8_lossy(&r.body)
    );
    let set = r.header("set-cookie").expect("a session cookie");
    set.split(';').next().unwrap().to_owned()
}

/// A response read by [`http`].
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// A plain HTTP/1.1 client over a fresh TCP connection, so tests can send anything at all
/// (hostile ranges, odd methods, oversized bodies) and see the raw answer. It sends the
/// session cookie of [`Daemon::http_addr`]'s login unless `headers` bring their own `Cookie`
/// or `Authorization`.
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let own = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("cookie") || k.eq_ignore_ascii_case("authorization"));
    match session_for(addr) {
        Some(c) if !own => {
            let mut with = headers.to_vec();
            with.push(("Cookie", &c));
            http_anon(addr, method, path, &with, body)
        }
        _ => http_anon(addr, method, path, headers, body),
    }
}

/// [`http`] with exactly the headers given: no identity unless they carry one.
pub fn http_anon(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    // Read the head, then exactly Content-Length bytes if given (some servers keep the
    // connection open despite `Connection: close`), else to the end.
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    let split = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the connection closed before a response head");
        raw.extend_from_slice(&buf[..n]);
    };
    let (status, headers) = parse_head(&raw[..split]);
    let content_length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    match content_length {
        _ if method == "HEAD" || status == 204 || status == 304 => {}
        Some(n) => {
            while raw.len() < split + 4 + n {
                let got = s.read(&mut buf).unwrap();
                assert!(
                    got > 0,
                    "the connection closed {} bytes into a body of {n}",
                    raw.len() - split - 4
                );
                raw.extend_from_slice(&buf[..got]);
            }
        }
        None => {
            s.read_to_end(&mut raw).unwrap();
        }
    }
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16)
                .unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + n]);
            rest = &rest[nl + 2 + n + 2..];
        }
        body = out;
    }
    Resp {
        status,
        headers,
        body,
    }
}

/// The status and the headers (names in lower case) of a response head.
fn parse_head(head: &[u8]) -> (u16, Vec<(String, String)>) {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers)
}

/// Reads an endless response for `time`, then hangs up. Returns the head and the complete
/// chunks of the body received by then.
pub fn http_for(addr: &str, path: &str, time: Duration) -> Resp {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let cookie = session_for(addr).map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{cookie}\r\n").unwrap();
    let until = Instant::now() + time;
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    while Instant::now() < until {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let (status, headers) = parse_head(&raw[..split]);
    let mut body = Vec::new();
    let mut rest = &raw[split + 4..];
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        while let Some(nl) = rest.windows(2).position(|w| w == b"\r\n") {
            let Ok(n) = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16)
            else {
                break;
            };
            if n == 0 || rest.len() < nl + 2 + n {
                break;
            }
            body.extend_from_slice(&rest[nl + 2..nl + 2 + n]);
            rest = &rest[(nl + 4 + n).min(rest.len())..];
        }
    } else {
        body = rest.to_vec();
    }
    Resp {
        status,
        headers,
        body,
    }
}

impl Daemon {
    /// The address the daemon's HTTP server listens on (it is configured with port 0).
    /// The address, without logging in (a box in setup mode, or with accounts off).
    pub fn http_addr_open(&mut self) -> String {
        let line = self
            .wait_log("http: listening on ", Duration::from_secs(20))
            .expect("the http server starts");
        line.rsplit("listening on ")
            .next()
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Logs in as [`ADMIN`] the first time, so that [`http`] is the admin from then on.
    pub fn http_addr(&mut self) -> String {
        let addr = self.http_addr_open();
        let pid = self.pid();
        let known = SESSIONS
            .lock()
            .unwrap()
            .iter()
            .any(|(a, p, _)| *a == addr && *p == pid);
        if !known {
            let cookie = login(&addr, ADMIN, PASSWORD);
            let mut s = SESSIONS.lock().unwrap();
            s.retain(|(a, _, _)| *a != addr);
            s.push((addr.clone(), pid, cookie));
        }
        addr
    }
}
