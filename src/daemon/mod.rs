//! The daemon's life: load the config, open the index, start the indexer and the recorder,
//! then wait for signals. SIGHUP, or saving the config file, applies the new config to the
//! recorder; an invalid edit is logged and changes nothing. The first SIGTERM or SIGINT stops
//! gracefully (STOPPING=1, every ffmpeg finishes its file, the indexer indexes them); a second
//! one exits at once.
//!
//! Invariant: signals are blocked in every thread and taken only by this module's `sigwait`.

pub mod logging;
pub mod watchdog;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use inotify::{Inotify, WatchMask};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::unistd::Pid;

use crate::config::{Config, Stream};
use crate::error::{Error, Result};
use crate::http;
use crate::index::Store;
use crate::index::indexer;
use crate::recorder::{self, Recorder, StreamSpec};
use crate::retention;
use crate::time::SystemClock;

use watchdog::Heartbeat;

/// Where recordings come from: the config's streams, or the demo's synthetic camera.
pub enum Mode {
    Config(PathBuf),
    Demo,
}

fn signals() -> SigSet {
    let mut s = SigSet::empty();
    s.add(Signal::SIGTERM);
    s.add(Signal::SIGINT);
    s.add(Signal::SIGHUP);
    s
}

fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        log::debug!("sd_notify: {e}");
    }
}

/// The config the demo runs with: one synthetic camera in 60-second segments under `data`.
pub fn demo_config(data: &Path, listen: std::net::SocketAddr) -> Config {
    let mut c = Config::default();
    c.storage.recordings_dir = data.join("recordings");
    c.storage.index_path = data.join("index.redb");
    c.storage.state_dir = data.join("state");
    c.http.listen = listen;
    c.streams.push(Stream {
        id: "demo".into(),
        name: "Demo camera".into(),
        url: "rtsp://127.0.0.1/demo".into(),
        enabled: true,
        retention_days: 1,
        segment_seconds: 60,
    });
    c
}

/// The demo's login: an `admin` with a new random password at every start, printed. Made
/// before the accounts open, so the demo never enters setup mode.
fn demo_login(state_dir: &Path) -> Result<()> {
    use crate::auth::{Accounts, Role, password, secret};
    let pw = secret::hex(&secret::random_bytes::<9>()?);
    let hash = password::hash(&pw)?;
    let now_ms = crate::time::Clock::now_ms(&SystemClock);
    Accounts::modify(state_dir, |a| {
        if a.user("admin").is_some() {
            a.set_hash("admin", hash)
        } else {
            a.add_user("admin", Role::Admin, hash, now_ms)
        }
    })?;
    let password = pw;
    // Printed, not logged: the demo's one purpose is to be opened by the person at the console.
    eprintln!("demo: log in as admin with the password {password}");
    Ok(())
}

fn recorder_input(config: &Config, mode: &Mode) -> (Vec<StreamSpec>, Vec<String>) {
    let specs = StreamSpec::from_config(config, matches!(mode, Mode::Demo));
    let disabled = config
        .streams
        .iter()
        .filter(|s| !s.enabled)
        .map(|s| s.id.clone())
        .collect();
    (specs, disabled)
}

/// Makes glibc's malloc give every large block (128 KiB and up) back to the kernel when it is
/// freed. By default the threshold grows to the largest block freed so far, so one login's
/// Argon2id (19 MiB) or one big listing stays in the heap for good: 28 MB of RSS instead of 8
/// on an idle box (`cargo bench --bench scale`).
fn fixed_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a malloc parameter; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
}

/// Runs until a stop signal. Returns the exit code.
pub fn run(config: Config, mode: Mode) -> Result<i32> {
    fixed_mmap_threshold();
    // Block the signals before any thread starts, so every thread inherits the mask and only
    // the wait below receives them.
    signals()
        .thread_block()
        .map_err(|e| Error::internal(format!("sigprocmask: {e}")))?;

    let store = Arc::new(Store::open(&config.storage.index_path)?);
    if let Mode::Demo = mode {
        demo_login(&config.storage.state_dir)?;
    }
    let auth = Arc::new(crate::auth::Auth::open(
        &config.storage.state_dir,
        Arc::new(SystemClock),
    )?);
    auth.watch()?;
    if !config.auth.enabled {
        log::warn!(
            "auth: disabled (auth.enabled = false): everyone who reaches {} is an admin; \
             only do this behind a proxy that authenticates",
            config.http.listen
        );
    }
    let beats = ["indexer", "retention", "recorder"].map(Heartbeat::new);
    let backfilled = Arc::new(AtomicBool::new(false));
    let done = backfilled.clone();
    notify(&[sd_notify::NotifyState::Status(
        "indexing the recordings on disk…",
    )]);
    let indexer = indexer::spawn(
        store.clone(),
        config.storage.recordings_dir.clone(),
        move |_| done.store(true, Ordering::Relaxed),
        beats[0].clone(),
    )?;
    let counters = Arc::new(retention::Counters::default());
    let statuses = recorder::Statuses::default();
    let mut shared = http::Shared::new(
        store.clone(),
        auth.clone(),
        config.clone(),
        statuses.clone(),
        counters.clone(),
    );
    if let Mode::Config(path) = &mode {
        shared.config_path = Some(path.clone());
    }
    let shared = Arc::new(shared);
    let current = shared.clone();
    let retention = retention::spawn(
        store.clone(),
        Arc::new(move || current.config()),
        counters,
        Arc::new(SystemClock),
        beats[1].clone(),
    )?;
    let nudge = retention.nudger();
    let (specs, disabled) = recorder_input(&config, &mode);
    let recorder = Recorder::spawn(
        specs,
        disabled,
        statuses,
        Arc::new(move || {
            let _ = nudge.try_send(());
        }),
        beats[2].clone(),
    )?;
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    let certs = match (&config.http.tls_cert, &config.http.tls_key) {
        (Some(c), Some(k)) => Some(http::tls::Certs::open(c, k)?),
        _ => None,
    };
    let server = http::Server::start(shared.clone(), config.http.listen, workers, certs.clone())?;
    if let Mode::Config(path) = &mode {
        watch_config(path)?;
    }
    let stop_watchdog = Arc::new(AtomicBool::new(false));
    let status_of = shared.clone();
    watchdog::spawn(
        beats.to_vec(),
        server.addr,
        move || status_line(&status_of, backfilled.load(Ordering::Relaxed)),
        stop_watchdog.clone(),
    );
    notify(&[sd_notify::NotifyState::Ready]);
    log::info!("running: {}", config.summary());

    let mut config = config;
    loop {
        let sig = signals()
            .wait()
            .map_err(|e| Error::internal(format!("sigwait: {e}")))?;
        match (sig, &mode) {
            (Signal::SIGHUP, Mode::Config(path)) => {
                match Config::load(path).inspect(|_| {
                    if let Some(c) = &certs {
                        c.reload();
                    }
                }) {
                    Ok(new) if new == config => log::info!("config {}: unchanged", path.display()),
                    Ok(new) => {
                        if new.storage != config.storage || new.http != config.http {
                            log::warn!(
                                "config {}: [storage] and [http] changes take effect at the next start",
                                path.display()
                            );
                        }
                        log::info!("config {}: applying", path.display());
                        auth.audit.record(&crate::auth::audit::Entry {
                            time_ms: crate::time::Clock::now_ms(&SystemClock),
                            user: "config file".into(),
                            address: "local".into(),
                            action: "config_apply".into(),
                            target: path.display().to_string(),
                        });
                        let (specs, disabled) = recorder_input(&new, &mode);
                        recorder.apply(specs, disabled);
                        shared.set_config(new.clone());
                        config = new;
                    }
                    Err(e) => log::error!("config reload refused, the running config stays:\n{e}"),
                }
                // Saves through the API wait for this.
                shared.reloaded();
            }
            (Signal::SIGHUP, Mode::Demo) => {}
            _ => {
                log::info!("{sig}: stopping");
                break;
            }
        }
    }
    stop_watchdog.store(true, Ordering::Relaxed);
    // ffmpeg gets its grace period to finish each file, and the indexer a little more.
    let extend = (recorder::STOP_GRACE + Duration::from_secs(15)).as_micros() as u32;
    notify(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::ExtendTimeoutUsec(extend),
    ]);
    std::thread::spawn(|| {
        if let Ok(sig) = signals().wait() {
            log::warn!("{sig} again: exiting at once");
            std::process::exit(1);
        }
    });
    server.stop();
    recorder.stop();
    retention.stop();
    // The indexer reads the close events of the last segments before it stops.
    indexer.stop();
    auth.flush();
    log::info!("stopped");
    Ok(0)
}

/// The one line `systemctl status` shows, e.g.
/// "recording 4/4 streams · 1234 segments · 62% disk free".
fn status_line(shared: &http::Shared, backfilled: bool) -> String {
    let config = shared.config();
    let enabled = config.streams.iter().filter(|s| s.enabled).count();
    let recording = shared
        .statuses
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .filter(|s| s.state == recorder::State::Recording)
        .count();
    let segments = shared.store.count().unwrap_or(0);
    let disk = crate::retention::disk::usage(&config.storage.recordings_dir).map_or_else(
        |_| "disk unknown".to_string(),
        |d| format!("{:.0}% disk free", d.free_percent()),
    );
    let indexing = if backfilled { "" } else { " (indexing…)" };
    format!("recording {recording}/{enabled} streams · {segments} segments{indexing} · {disk}")
}

/// Watches the config file's folder and turns a save (written and closed, or renamed into
/// place, as editors do) into a SIGHUP to this process, so both take the same path.
fn watch_config(path: &Path) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    let Some(name) = path.file_name().map(|n| n.to_owned()) else {
        return Ok(());
    };
    let mut inotify = Inotify::init().map_err(|e| Error::from(e).context("inotify"))?;
    inotify
        .watches()
        .add(
            &dir,
            WatchMask::CLOSE_WRITE | WatchMask::MOVED_TO | WatchMask::ONLYDIR,
        )
        .map_err(|e| Error::from(e).context(dir.display()))?;
    std::thread::Builder::new()
        .name("config-watch".into())
        .spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let events = match inotify.read_events_blocking(&mut buf) {
                    Ok(ev) => ev,
                    Err(e) => {
                        log::error!("config watch: {e}");
                        return;
                    }
                };
                if events.into_iter().any(|e| e.name == Some(name.as_os_str())) {
                    let _ = kill(Pid::this(), Signal::SIGHUP);
                }
            }
        })
        .map_err(|e| Error::internal(format!("config watch thread: {e}")))?;
    Ok(())
}
