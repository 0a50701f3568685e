//! The daemon's life: load the config, open the index, start the indexer and the recorders,
//! then wait for signals. SIGHUP reloads the config; the first SIGTERM or SIGINT stops
//! gracefully (STOPPING=1, ffmpeg finishes its files, the indexer indexes them); a second one
//! exits at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};

use crate::config::{AudioMode, Config, Stream};
use crate::error::{Error, Result};
use crate::indexer;
use crate::recorder::{Recorder, Source};
use crate::store::Store;

const FFMPEG_GRACE: Duration = Duration::from_secs(10);

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

/// Runs until a stop signal. Returns the exit code.
pub fn run(config: Config, mode: Mode) -> Result<i32> {
    // Block the signals before any thread starts, so every thread inherits the mask and only
    // the wait below receives them.
    signals()
        .thread_block()
        .map_err(|e| Error::internal(format!("sigprocmask: {e}")))?;

    let store = Arc::new(Store::open(&config.storage.index_path)?);
    let indexer = indexer::spawn(store.clone(), config.storage.recordings_dir.clone(), |r| {
        notify(&[sd_notify::NotifyState::Status(&format!(
            "indexed {} files",
            r.files
        ))]);
    })?;

    let mut recorders = Vec::new();
    for s in config.streams.iter().filter(|s| s.enabled) {
        let source = match mode {
            Mode::Demo => Source::TestPattern,
            Mode::Config(_) => Source::Rtsp(&s.url),
        };
        let audio = if matches!(mode, Mode::Demo) {
            AudioMode::Copy
        } else {
            config.recording.audio
        };
        match Recorder::start(
            &config.recording.ffmpeg_path,
            s,
            source,
            audio,
            &config.storage.recordings_dir,
        ) {
            Ok(r) => recorders.push(r),
            Err(e) => log::error!("{}: {e}", s.id),
        }
    }
    notify(&[sd_notify::NotifyState::Ready]);
    log::info!("running: {}", config.summary());

    loop {
        let sig = signals()
            .wait()
            .map_err(|e| Error::internal(format!("sigwait: {e}")))?;
        match sig {
            Signal::SIGHUP => {
                if let Mode::Config(path) = &mode {
                    match Config::load(path) {
                        Ok(_) => log::info!(
                            "config {} is valid; streams are applied by the recorder",
                            path.display()
                        ),
                        Err(e) => {
                            log::error!("config reload refused, the running config stays:\n{e}")
                        }
                    }
                }
            }
            _ => {
                log::info!("{sig}: stopping");
                break;
            }
        }
    }
    notify(&[sd_notify::NotifyState::Stopping]);
    std::thread::spawn(|| {
        if let Ok(sig) = signals().wait() {
            log::warn!("{sig} again: exiting at once");
            std::process::exit(1);
        }
    });
    std::thread::scope(|s| {
        for r in recorders {
            s.spawn(move || r.stop(FFMPEG_GRACE));
        }
    });
    // The indexer reads the close events of the last segments before it stops.
    indexer.stop();
    log::info!("stopped");
    Ok(0)
}
