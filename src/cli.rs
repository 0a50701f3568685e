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
