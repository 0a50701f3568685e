//! Logging to stderr, level from `RUST_LOG` (default `info`). Under systemd (`JOURNAL_STREAM`
//! set) each line starts with its syslog priority (`<3>` error … `<7>` debug) so journald keeps
//! the level, and the timestamp is left to journald.

use std::io::Write;

pub fn init() {
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if journal {
        b.format(|f, r| {
            let prio = match r.level() {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                log::Level::Debug | log::Level::Trace => 7,
            };
            writeln!(f, "<{prio}>{}: {}", r.target(), r.args())
        });
    }
    let _ = b.try_init();
}
