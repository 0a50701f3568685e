//! Benchmarks of issue 4 with wrk (Debian's), printed as plain numbers:
//! - a login: the Argon2id hash's cost, as the median of 10 logins in a row;
//! - listing a day of one stream (96 recordings): requests per second and p99 latency, with
//!   accounts off (no identity to check), with the session cookie, and with an API token;
//! - streaming a ~200 MB segment to 16 connections, side by side with nginx (`sendfile on`)
//!   serving the same file.
//!
//! Run with `cargo bench --bench http`; needs `wrk` and `nginx-light` (`apt-get install`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Daemon, Signal, TempDir, record_segments, wait_for, write_config};
use wallflower_nvr::time::{parse_segment_name, segment_name};

fn wrk(connections: u32, seconds: u32, url: &str, header: &str) -> String {
    let mut cmd = Command::new("wrk");
    if !header.is_empty() {
        cmd.args(["-H", header]);
    }
    let out = cmd
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            url,
        ])
        .output()
        .expect("wrk runs (apt-get install wrk)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value after `label` on its line of wrk's output.
fn field<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .map(|r| r.split_whitespace().next().unwrap_or("?"))
        .unwrap_or("?")
}

/// wrk's "Transfer/sec" in MB/s.
fn mb_per_s(out: &str) -> f64 {
    let v = field(out, "Transfer/sec:");
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(0.0);
    n * match unit {
        "GB" => 1024.0,
        "KB" => 1.0 / 1024.0,
        _ => 1.0,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = TempDir::new("benchhttp");
    let root = dir.path().join("recordings");

    // One day of one stream: 96 segments of 15 minutes (hard links to one real segment).
    let seg = record_segments(&dir.path().join("src"), 7.0, 3, true, false).remove(0);
    let day0 = parse_segment_name("2026-01-01_00-00-00.mp4").unwrap();
    std::fs::create_dir_all(root.join("cam")).unwrap();
    for i in 0..96 {
        std::fs::hard_link(
            &seg,
            root.join("cam").join(segment_name(day0 + i * 900_000)),
        )
        .unwrap();
    }

    // A big segment: a few seconds of lossless noise, about 200 MB.
    let big = dir.path().join("big.mp4");
    common::noise_segment(&big, "1280x720", 8.0);
    std::fs::create_dir_all(root.join("big")).unwrap();
    let big_name = "2026-01-02_00-00-00.mp4";
    std::fs::rename(&big, root.join("big").join(big_name)).unwrap();
    let big_len = std::fs::metadata(root.join("big").join(big_name))
        .unwrap()
        .len();

    let cfg = write_config(dir.path(), "");
    let list_path =
        "/api/streams/cam/recordings?start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:00Z";
    let report = |what: &str, out: &str| {
        println!(
            "list a day (96 recordings), 32 connections, {what}: {} req/s, p99 {}, p50 {}",
            field(out, "Requests/sec:"),
            field(out, "99%"),
            field(out, "50%")
        )
    };

    // Accounts off: the figure before accounts existed.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}[auth]\nenabled = false\n")).unwrap();
    let mut d = Daemon::start(&cfg);
    let addr = d.http_addr_open();
    assert!(d.wait_log("backfill:", Duration::from_secs(60)).is_some());
    let list = format!("http://{addr}{list_path}");
    let _ = wrk(32, 3, &list, "");
    report("accounts off", &wrk(32, 10, &list, ""));
    d.signal(Signal::SIGTERM);
    assert!(d.wait(Duration::from_secs(30)).success());

    std::fs::write(&cfg, text).unwrap();
    let mut d = Daemon::start(&cfg);
    let addr = d.http_addr();
    let list = format!("http://{addr}{list_path}");
    let mut ms: Vec<f64> = (0..10)
        .map(|_| {
            let t0 = std::time::Instant::now();
            common::login(&addr, common::ADMIN, common::PASSWORD);
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    println!(
        "login (Argon2id, m=19 MiB, t=2, p=1): median {:.0} ms, min {:.0} ms, max {:.0} ms",
        ms[5], ms[0], ms[9]
    );
    let r = common::http(&addr, "GET", list_path, &[], b"");
    assert_eq!(r.json().as_array().unwrap().len(), 96);
    let cookie = format!("Cookie: {}", common::session_for(&addr).unwrap());
    let _ = wrk(32, 3, &list, &cookie);
    report("session cookie", &wrk(32, 10, &list, &cookie));
    let t = common::http(
        &addr,
        "POST",
        "/api/tokens",
        &[],
        br#"{"name":"bench","role":"viewer"}"#,
    )
    .json();
    let bearer = format!("Authorization: Bearer {}", t["token"].as_str().unwrap());
    report("API token", &wrk(32, 10, &list, &bearer));

    let big_id =
        common::http(&addr, "GET", "/api/streams/big/recordings", &[], b"").json()[0]["id"]
            .as_u64()
            .unwrap();
    let ours_url = format!("http://{addr}/api/recordings/{big_id}/stream");
    let _ = wrk(16, 3, &ours_url, &cookie);
    let ours = wrk(16, 15, &ours_url, &cookie);

    // nginx serving the same file with sendfile.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ngx = dir.path().join("nginx");
    std::fs::create_dir_all(ngx.join("logs")).unwrap();
    let conf = ngx.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off; worker_processes 2; pid {p}/nginx.pid; error_log {p}/logs/error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{ sendfile on; tcp_nopush on; access_log off; types {{ video/mp4 mp4; }}\n\
             client_body_temp_path {p}/tmp; proxy_temp_path {p}/tmp; fastcgi_temp_path {p}/tmp;\n\
             server {{ listen 127.0.0.1:{port}; root {root}; }} }}\n",
            p = ngx.display(),
            root = root.display()
        ),
    )
    .unwrap();
    let mut nginx = Command::new("nginx")
        .args(["-c"])
        .arg(&conf)
        .args(["-p"])
        .arg(&ngx)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx runs (apt-get install nginx-light)");
    assert!(wait_for(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    let nginx_url = format!("http://127.0.0.1:{port}/big/{big_name}");
    let _ = wrk(16, 3, &nginx_url, "");
    let theirs = wrk(16, 15, &nginx_url, "");
    let _ = nginx.kill();
    let _ = nginx.wait();

    let (a, b) = (mb_per_s(&ours), mb_per_s(&theirs));
    println!(
        "stream a {:.0} MB segment to 16 connections: wallflower {a:.0} MB/s, nginx sendfile {b:.0} MB/s: {:.2}x",
        big_len as f64 / 1e6,
        a / b
    );
    d.signal(Signal::SIGTERM);
    assert!(d.wait(Duration::from_secs(30)).success());
}
