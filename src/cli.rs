//! The command line of `../shared/SPEC.md` §1. Only this module and `main` print to stdout.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::config::{self, Config};
use crate::media;
use crate::time;

#[derive(Parser, Debug)]
#[command(
    name = "wallflower-nvr",
    version,
    about = "A small network video recorder"
)]
pub struct Cli {
    /// Config file [env: WALLFLOWER_NVR_CONFIG] [default: /etc/wallflower-nvr/config.toml]
    #[arg(short = 'c', long = "config", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon (the default)
    Run,
    /// Validate the config: exit 0 with a summary, or 1 with every error as PATH:LINE:COL
    CheckConfig,
    /// Print one JSON line per MP4 file: duration, codecs, frame size
    Probe {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Manage the users of the web UI and the API (password read from stdin)
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Run a complete daemon with no config, recording a synthetic camera
    Demo {
        /// Where recordings and the index go
        #[arg(long, default_value = "./demo-data")]
        data: PathBuf,
        /// Address of the web UI
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserAction {
    /// Add a user; the password is the first line of stdin
    Add {
        name: String,
        #[arg(long, default_value = "viewer", value_parser = ["admin", "viewer"])]
        role: String,
    },
    /// Set a user's password from the first line of stdin; ends their sessions
    Passwd { name: String },
    /// List the users and their roles
    List,
}

/// `-c`, else `WALLFLOWER_NVR_CONFIG`, else the system path.
pub fn config_path(cli: &Cli) -> PathBuf {
    cli.config
        .clone()
        .or_else(|| {
            std::env::var_os("WALLFLOWER_NVR_CONFIG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH))
}

pub fn check_config(path: &Path) -> i32 {
    match Config::load(path) {
        Ok(c) => {
            println!("{}: ok: {}", path.display(), c.summary());
            0
        }
        Err(e) => {
            println!("{e}");
            1
        }
    }
}

/// One JSON object per file, in the order given; exit code 1 if any file failed.
pub fn probe(files: &[PathBuf]) -> i32 {
    let mut code = 0;
    let mut out = std::io::stdout().lock();
    for f in files {
        let path = f.display().to_string();
        let start_time = f
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(time::parse_segment_name)
            .map(|ms| time::rfc3339_us(ms * 1000));
        let line = match media::probe_file(f) {
            Ok(p) => serde_json::json!({
                "path": path,
                "start_time": start_time,
                "duration_seconds": p.duration_us as f64 / 1e6,
                "fragmented": p.fragmented,
                "truncated": p.truncated,
                "video_codec": p.video_codec,
                "width": p.width,
                "height": p.height,
                "audio_codec": p.audio_codec,
            }),
            Err(e) => {
                code = 1;
                serde_json::json!({"path": path, "error": e.to_string()})
            }
        };
        use std::io::Write;
        if writeln!(out, "{line}").is_err() {
            return 1;
        }
    }
    code
}

/// The first line of stdin, without echo when it is a terminal.
fn read_password() -> std::io::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    let saved = if stdin.is_terminal() {
        eprint!("password: ");
        let _ = std::io::stderr().flush();
        let saved = tcgetattr(&stdin).ok();
        if let Some(t) = &saved {
            let mut quiet = t.clone();
            quiet.local_flags.remove(LocalFlags::ECHO);
            let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
        }
        saved
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(t) = saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &t);
        eprintln!();
    }
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// `user add|passwd|list`: edits `{state_dir}/accounts.json` under its lock; a running daemon
/// sees the change at once.
pub fn user(path: &Path, action: &UserAction) -> i32 {
    use crate::auth::{Accounts, Role, accounts, password};
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let dir = &config.storage.state_dir;
    let result = match action {
        UserAction::List => Accounts::load(dir).map(|a| {
            for u in &a.users {
                println!("{}\t{}", u.username, u.role.as_str());
            }
        }),
        UserAction::Add { name, role } => {
            let role = Role::parse(role).unwrap_or(Role::Viewer);
            if !accounts::valid_username(name) {
                eprintln!("{name:?} is not a valid user name (1 to 64 of A-Z a-z 0-9 . _ - @)");
                return 2;
            }
            new_hash().and_then(|hash| {
                let now = time::Clock::now_ms(&time::SystemClock);
                Accounts::modify(dir, |a| a.add_user(name, role, hash, now)).map(|_| {
                    console_audit(dir, "user_add", name);
                    println!("added {name} ({})", role.as_str());
                })
            })
        }
        UserAction::Passwd { name } => new_hash().and_then(|hash| {
            Accounts::modify(dir, |a| a.set_hash(name, hash)).map(|_| {
                console_audit(dir, "user_password", name);
                println!("changed the password of {name}");
            })
        }),
    };
    fn new_hash() -> crate::error::Result<String> {
        let pw = read_password()?;
        if let Some(why) = password::check_new(&pw) {
            return Err(crate::error::Error::bad_request(why));
        }
        password::hash(&pw)
    }
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// The audit log names the console as the user and `local` as the address.
fn console_audit(dir: &Path, action: &str, target: &str) {
    crate::auth::audit::Audit::new(dir).record(&crate::auth::audit::Entry {
        time_ms: time::Clock::now_ms(&time::SystemClock),
        user: "console".into(),
        address: "local".into(),
        action: action.into(),
        target: target.into(),
    });
}
