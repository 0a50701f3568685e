//! systemd integration: the unit passes `systemd-analyze verify` silently, and the daemon
//! speaks sd_notify on a real `NOTIFY_SOCKET` (a unix datagram socket this test reads).

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Daemon, Signal, TempDir, http, write_config};

#[test]
fn the_unit_verifies_without_a_word() {
    let dir = TempDir::new("unit");
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/wallflower-nvr.service"
    ))
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/wallflower-nvr run"));
    // verify checks that the binary exists: point it at the one just built.
    let path = dir.path().join("wallflower-nvr.service");
    std::fs::write(
        &path,
        unit.replace("/usr/bin/wallflower-nvr", common::bin()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze runs (`bash .ci/setup --test` installs systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // verify exits 0 even for misspelled settings; it only complains on stderr.
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify said: {stderr}"
    );
    for key in [
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=30",
        "Restart=always",
        "ProtectSystem=strict",
    ] {
        assert!(unit.contains(key), "{key}");
    }
}

/// Every datagram the daemon sends, with when it arrived.
fn listen(dir: &std::path::Path) -> (std::path::PathBuf, mpsc::Receiver<(Instant, String)>) {
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if tx.send((Instant::now(), msg)).is_err() {
                break;
            }
        }
    });
    (path, rx)
}

fn start(dir: &std::path::Path, sock: &std::path::Path, fault: Option<&str>) -> Daemon {
    let cfg = write_config(dir, "");
    let mut cmd = Command::new(common::bin());
    cmd.args(["run", "-c"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", sock)
        .env("WATCHDOG_USEC", "2000000");
    if let Some(f) = fault {
        cmd.env("WALLFLOWER_NVR_FAULT", f);
    }
    Daemon::start_with(&mut cmd)
}

/// Waits for a message containing `needle`; returns when it came and what else came before.
fn wait_msg(
    rx: &mpsc::Receiver<(Instant, String)>,
    needle: &str,
    seen: &mut Vec<(Instant, String)>,
) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("the message arrives in time");
        let (at, m) = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no {needle:?}; got {seen:?}"));
        seen.push((at, m.clone()));
        if m.contains(needle) {
            return at;
        }
    }
}

#[test]
fn ready_status_watchdog_and_stopping() {
    let dir = TempDir::new("notify");
    let (sock, rx) = listen(dir.path());
    let mut d = start(dir.path(), &sock, None);
    let addr = d.http_addr();
    let mut seen = Vec::new();
    wait_msg(&rx, "READY=1", &mut seen);
    // By READY the port answers.
    assert_eq!(http(&addr, "GET", "/api/health", &[], b"").status, 200);
    assert!(
        seen.iter().any(|(_, m)| m.starts_with("STATUS=")),
        "{seen:?}"
    );

    // WATCHDOG=1 about every half of WATCHDOG_USEC (2 s).
    let mut pings = Vec::new();
    while pings.len() < 5 {
        pings.push(wait_msg(&rx, "WATCHDOG=1", &mut seen));
    }
    let gaps: Vec<f64> = pings
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    for g in &gaps {
        assert!(
            (0.6..=1.6).contains(g),
            "pings {gaps:?} s apart; want about 1 s"
        );
    }
    let status: Vec<&String> = seen
        .iter()
        .map(|(_, m)| m)
        .filter(|m| m.starts_with("STATUS=recording"))
        .collect();
    assert!(!status.is_empty(), "{seen:?}");
    assert!(
        status[0].contains("streams") && status[0].contains("disk free"),
        "{status:?}"
    );

    d.signal(Signal::SIGTERM);
    wait_msg(&rx, "STOPPING=1", &mut seen);
    assert!(
        seen.last().unwrap().1.contains("EXTEND_TIMEOUT_USEC="),
        "{seen:?}"
    );
    assert!(d.wait(Duration::from_secs(30)).success());
}

#[test]
fn a_hung_subsystem_stops_the_watchdog_pings() {
    let dir = TempDir::new("hang");
    let (sock, rx) = listen(dir.path());
    let mut d = start(dir.path(), &sock, Some("hang-indexer"));
    let mut seen = Vec::new();
    wait_msg(&rx, "READY=1", &mut seen);
    assert!(
        d.wait_log("hanging on purpose", Duration::from_secs(20))
            .is_some()
    );
    // Heartbeats may be up to two beats (10 s) old before they count as stale.
    std::thread::sleep(Duration::from_secs(13));
    let last_ping = rx
        .try_iter()
        .chain(seen.drain(..))
        .filter(|(_, m)| m.contains("WATCHDOG=1"))
        .map(|(at, _)| at)
        .max();
    let quiet_since = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let late: Vec<String> = rx
        .try_iter()
        .filter(|(_, m)| m.contains("WATCHDOG=1"))
        .map(|(_, m)| m)
        .collect();
    assert!(
        late.is_empty(),
        "pings went on while the indexer hung: {late:?}"
    );
    assert!(
        last_ping.is_some_and(|t| t < quiet_since),
        "it pinged while healthy"
    );
    assert!(
        d.wait_log("watchdog: not pinging", Duration::from_secs(1))
            .is_some()
    );
}

#[test]
fn under_journald_lines_carry_syslog_priorities() {
    let dir = TempDir::new("journal");
    let cfg = write_config(dir.path(), "");
    let mut d = Daemon::start_with(
        Command::new(common::bin())
            .args(["run", "-c"])
            .arg(&cfg)
            .env("JOURNAL_STREAM", "8:1234"),
    );
    let line = d.wait_log("running:", Duration::from_secs(20)).unwrap();
    assert!(line.starts_with("<6>"), "{line}");
    d.signal(Signal::SIGTERM);
    assert!(d.wait(Duration::from_secs(30)).success());
    let warn = Command::new(common::bin())
        .args(["run", "-c"])
        .arg(dir.path().join("missing.toml"))
        .env("JOURNAL_STREAM", "8:1234")
        .output()
        .unwrap();
    assert!(!warn.status.success());
}
