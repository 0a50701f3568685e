//! The TOML configuration (docs/config.md): parsing, defaults and validation.
//!
//! The document is walked by hand over `toml`'s spanned tree rather than through serde, so that
//! one pass collects *every* error, each with the line and column of the key it names.
//! Invariant: a [`Config`] value is always valid; there is no way to build a half-checked one.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub mod edit;
pub mod save;
mod walk;

pub const DEFAULT_PATH: &str = "/etc/wallflower-nvr/config.toml";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub storage: Storage,
    pub recording: Recording,
    pub retention: Retention,
    pub http: Http,
    pub auth: Auth,
    pub streams: Vec<Stream>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Storage {
    pub recordings_dir: PathBuf,
    pub index_path: PathBuf,
    /// Users, sessions, tokens, the audit log, the setup code (SPEC §5).
    pub state_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub segment_seconds: u32,
    pub source_template: String,
    pub ffmpeg_path: String,
    pub audio: AudioMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioMode {
    Auto,
    Copy,
    Off,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Retention {
    pub default_days: u32,
    pub check_interval_seconds: u32,
    pub min_free_percent: f64,
    pub target_free_percent: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Http {
    pub listen: SocketAddr,
    /// PEM files; both set or neither. Set: the listener speaks HTTPS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Auth {
    /// false only behind a proxy that authenticates (logged at start).
    pub enabled: bool,
    pub session_days: u32,
    /// true: `/metrics` without a token.
    pub public_metrics: bool,
}

impl Auth {
    pub fn session_ms(&self) -> i64 {
        i64::from(self.session_days) * 86_400_000
    }
}

/// A stream with every default already resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub id: String,
    pub name: String,
    pub url: String,
    pub enabled: bool,
    pub retention_days: u32,
    pub segment_seconds: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            storage: Storage {
                recordings_dir: "/data/recordings".into(),
                index_path: "/var/lib/wallflower-nvr/index.redb".into(),
                state_dir: "/var/lib/wallflower-nvr".into(),
            },
            recording: Recording {
                segment_seconds: 900,
                source_template: "rtsp://127.0.0.1:8955/{stream_id}".into(),
                ffmpeg_path: "ffmpeg".into(),
                audio: AudioMode::Auto,
            },
            retention: Retention {
                default_days: 7,
                check_interval_seconds: 60,
                min_free_percent: 10.0,
                target_free_percent: 15.0,
            },
            http: Http {
                listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
                tls_cert: None,
                tls_key: None,
            },
            auth: Auth {
                enabled: true,
                session_days: 30,
                public_metrics: false,
            },
            streams: Vec::new(),
        }
    }
}

/// One problem in a config file, located at a line and column (both 1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// All the problems of one config file; `Display` prints them as `PATH:LINE:COL: message`.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    pub path: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                e.line,
                e.col,
                e.message
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigErrors> for crate::error::Error {
    fn from(e: ConfigErrors) -> Self {
        crate::error::Error::new(crate::error::Kind::Config, e.to_string())
    }
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, path),
            Err(e) => Err(ConfigErrors {
                path: path.to_owned(),
                errors: vec![ConfigError {
                    line: 1,
                    col: 1,
                    message: format!("cannot read: {e}"),
                }],
            }),
        }
    }

    /// Parses and validates `text`; `path` only names the file in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
        walk::parse(text, path)
    }

    pub fn stream(&self, id: &str) -> Option<&Stream> {
        self.streams.iter().find(|s| s.id == id)
    }

    /// A one-line summary, as `check-config` prints it.
    pub fn summary(&self) -> String {
        let enabled = self.streams.iter().filter(|s| s.enabled).count();
        format!(
            "{} stream(s), {} enabled; recordings in {}; index at {}; {} on {}",
            self.streams.len(),
            enabled,
            self.storage.recordings_dir.display(),
            self.storage.index_path.display(),
            if self.http.tls_cert.is_some() {
                "https"
            } else {
                "http"
            },
            self.http.listen
        )
    }
}

/// Whether `url` is a camera URL the config accepts (`rtsp://` or `rtsps://` with a host); the
/// message shows it without credentials.
pub fn check_stream_url(url: &str) -> Result<(), String> {
    walk::check_url(url)
}

/// `[a-z0-9][a-z0-9_-]{0,63}`
pub fn valid_stream_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

#[cfg(test)]
mod tests {
    use super::walk::check_url;
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        Config::parse(text, Path::new("c.toml"))
    }

    fn errors(text: &str) -> Vec<String> {
        parse(text)
            .unwrap_err()
            .to_string()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn stream_defaults_come_from_the_global_keys() {
        let c = parse(
            "[recording]\nsegment_seconds = 300\n[retention]\ndefault_days = 3\n[[streams]]\nid = \"cam-1\"\n",
        )
        .unwrap();
        let s = &c.streams[0];
        assert_eq!(s.name, "cam-1");
        assert_eq!(s.url, "rtsp://127.0.0.1:8955/cam-1");
        assert!(s.enabled);
        assert_eq!((s.retention_days, s.segment_seconds), (3, 300));
    }

    #[test]
    fn every_error_is_reported_with_its_position_and_key() {
        let text = "[storage]\nbogus = 1\n[retention]\nmin_free_percent = 20\ntarget_free_percent = 5\n\
                    [[streams]]\nid = \"Front Door\"\n[[streams]]\nid = \"a\"\nurl = \"http://x/y\"\n\
                    segment_seconds = 0\n[[streams]]\nid = \"a\"\n";
        assert_eq!(
            errors(text),
            [
                "c.toml:2:1: storage.bogus: unknown key",
                "c.toml:5:1: retention.target_free_percent: 5 is below retention.min_free_percent (20)",
                "c.toml:7:1: streams[0].id: \"Front Door\" is not a valid stream id ([a-z0-9][a-z0-9_-]{0,63})",
                "c.toml:10:1: streams[1].url: \"http://x/y\" is not rtsp:// or rtsps://",
                "c.toml:11:1: streams[1].segment_seconds: must be a whole number of seconds from 1 to 86400",
                "c.toml:13:1: streams[2].id: \"a\" is used by an earlier stream",
            ]
        );
    }

    #[test]
    fn auth_and_tls_keys() {
        let c = parse(
            "[storage]\nstate_dir = \"/s\"\n[auth]\nenabled = false\nsession_days = 2\npublic_metrics = true\n\
             [http]\ntls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"\n",
        )
        .unwrap();
        assert_eq!(c.storage.state_dir, Path::new("/s"));
        assert_eq!(
            (c.auth.enabled, c.auth.session_days, c.auth.public_metrics),
            (false, 2, true)
        );
        assert_eq!(c.auth.session_ms(), 2 * 86_400_000);
        assert_eq!(c.http.tls_cert.as_deref(), Some(Path::new("/c.pem")));
        assert!(
            parse("[http]\ntls_cert = \"\"\ntls_key = \"\"\n")
                .unwrap()
                .http
                .tls_cert
                .is_none()
        );
        assert_eq!(
            errors("[auth]\nsession_days = 0\nbogus = 1\n[http]\ntls_key = \"/k\"\n"),
            [
                "c.toml:2:1: auth.session_days: must be a whole number of days from 1 to 3650",
                "c.toml:3:1: auth.bogus: unknown key",
                "c.toml:5:1: http.tls_cert and http.tls_key: set both (PEM files) or neither",
            ]
        );
    }

    #[test]
    fn syntax_errors_are_located() {
        let e = errors("[http]\nlisten = \n");
        assert!(e[0].starts_with("c.toml:2:"), "{e:?}");
    }

    #[test]
    fn wrong_types_and_missing_id() {
        let e = errors("[http]\nlisten = 8080\n[[streams]]\nname = \"x\"\nenabled = \"yes\"\n");
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(
            e[0].contains("http.listen: expected a string, found integer"),
            "{e:?}"
        );
        assert!(e[1].contains("streams[0].id: missing"), "{e:?}");
        assert!(
            e[2].contains("streams[0].enabled: expected true or false"),
            "{e:?}"
        );
    }

    #[test]
    fn urls_and_ids() {
        assert!(check_url("rtsp://10.0.0.2:554/s1").is_ok());
        assert!(check_url("RTSPS://user:pw@cam/s").is_ok());
        assert!(check_url("rtsp:///s").is_err());
        assert!(check_url("rtsp://:554/s").is_err());
        assert!(valid_stream_id("a"));
        assert!(valid_stream_id(&"a".repeat(64)));
        assert!(!valid_stream_id(&"a".repeat(65)));
        assert!(!valid_stream_id("-a"));
        assert!(!valid_stream_id("a/b"));
        assert!(!valid_stream_id(""));
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let text = include_str!("../../config/wallflower-nvr.toml");
        let c = parse(text).unwrap();
        assert!(
            c.streams.is_empty(),
            "a new box has no cameras: none made up"
        );
        // The commented example becomes a valid camera once uncommented.
        let example: String = text
            .lines()
            .skip_while(|l| !l.starts_with("# [[streams]]"))
            .take_while(|l| l.starts_with("# ") && !l.starts_with("# A stream"))
            .map(|l| format!("{}\n", &l[2..]))
            .collect();
        let c = parse(&format!("{text}{example}")).unwrap();
        assert_eq!(c.streams[0].id, "front-door");
    }
}
