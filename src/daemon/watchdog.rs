//! The systemd watchdog and status line.
//!
//! `WATCHDOG=1` means "every part works", not "a timer fired": each subsystem (indexer,
//! retention, recorder supervisor) beats a [`Heartbeat`] from its own loop, and the HTTP server
//! is probed with a real request. The watchdog thread pings only while all of them are fresh,
//! so a hung subsystem stops the pings and systemd restarts the daemon. It also sends a one-line
//! `STATUS=` that `systemctl status` shows.
//!
//! Invariant: heartbeats use the monotonic clock.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a subsystem's loop must come round at the least.
pub const BEAT: Duration = Duration::from_secs(5);

/// One subsystem's last sign of life.
#[derive(Clone)]
pub struct Heartbeat {
    pub name: &'static str,
    epoch: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Heartbeat {
    pub fn new(name: &'static str) -> Heartbeat {
        let epoch = Instant::now();
        Heartbeat {
            name,
            epoch,
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn beat(&self) {
        self.last_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    pub fn age(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// Test-only fault switch: `WALLFLOWER_NVR_FAULT=hang-NAME` makes subsystem NAME hang in its
/// loop, so tests can see the watchdog stop. Never set in production.
pub fn hang_if_faulted(name: &str) {
    if std::env::var("WALLFLOWER_NVR_FAULT").is_ok_and(|v| v.strip_prefix("hang-") == Some(name)) {
        log::warn!("{name}: hanging on purpose (WALLFLOWER_NVR_FAULT)");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

/// Whether the HTTP server answers a request on `addr` within `timeout`.
fn http_answers(addr: SocketAddr, timeout: Duration) -> bool {
    let addr = if addr.ip().is_unspecified() {
        SocketAddr::new(
            if addr.is_ipv4() {
                [127, 0, 0, 1].into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            },
            addr.port(),
        )
    } else {
        addr
    };
    let Ok(mut s) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    if s.write_all(b"HEAD /api/health HTTP/1.1\r\nHost: watchdog\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 ")
}

/// Starts the watchdog thread. `status` makes the status line; `stop` ends the thread.
pub fn spawn(
    beats: Vec<Heartbeat>,
    http: SocketAddr,
    status: impl Fn() -> String + Send + 'static,
    stop: Arc<AtomicBool>,
) {
    let watchdog = sd_notify::watchdog_enabled();
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let period = watchdog.map_or(Duration::from_secs(10), |w| {
        (w / 2).max(Duration::from_millis(100))
    });
    let max_age = watchdog.map_or(BEAT * 3, |w| w.max(BEAT * 2));
    let _ = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            let mut stale_logged = false;
            let mut last_status = String::new();
            while !stop.load(Ordering::Relaxed) {
                if watchdog.is_some() {
                    let stale: Vec<&str> = beats
                        .iter()
                        .filter(|b| b.age() > max_age)
                        .map(|b| b.name)
                        .collect();
                    let http_ok = http_answers(http, period.min(Duration::from_secs(5)));
                    if stale.is_empty() && http_ok {
                        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                        stale_logged = false;
                    } else if !stale_logged {
                        log::error!(
                            "watchdog: not pinging; stale: {stale:?}, http answers: {http_ok}"
                        );
                        stale_logged = true;
                    }
                }
                let line = status();
                if line != last_status {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&line)]);
                    last_status = line;
                }
                std::thread::sleep(period);
            }
        });
}
