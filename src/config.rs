//! The TOML configuration of `../shared/SPEC.md` §3: parsing, defaults and validation.
//!
//! The document is walked by hand over `toml`'s spanned tree rather than through serde, so that
//! one pass collects *every* error, each with the line and column of the key it names.
//! Invariant: a [`Config`] value is always valid; there is no way to build a half-checked one.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub const DEFAULT_PATH: &str = "/etc/wallflower-nvr/config.toml";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub storage: Storage,
    pub recording: Recording,
    pub retention: Retention,
    pub http: Http,
    pub streams: Vec<Stream>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Storage {
    pub recordings_dir: PathBuf,
    pub index_path: PathBuf,
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
        let mut w = Walker {
            text,
            errors: Vec::new(),
        };
        let (doc, syntax) = DeTable::parse_recoverable(text);
        for e in syntax {
            let at = e.span().unwrap_or(0..0);
            w.error(at, e.message().trim().to_owned());
        }
        let config = if w.errors.is_empty() {
            Some(w.document(doc.get_ref()))
        } else {
            None
        };
        match config {
            Some(c) if w.errors.is_empty() => Ok(c),
            _ => {
                w.errors.sort_by_key(|e| (e.line, e.col));
                Err(ConfigErrors {
                    path: path.to_owned(),
                    errors: w.errors,
                })
            }
        }
    }

    pub fn stream(&self, id: &str) -> Option<&Stream> {
        self.streams.iter().find(|s| s.id == id)
    }

    /// A one-line summary, as `check-config` prints it.
    pub fn summary(&self) -> String {
        let enabled = self.streams.iter().filter(|s| s.enabled).count();
        format!(
            "{} stream(s), {} enabled; recordings in {}; index at {}; http on {}",
            self.streams.len(),
            enabled,
            self.storage.recordings_dir.display(),
            self.storage.index_path.display(),
            self.http.listen
        )
    }
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

type Table<'i> = DeTable<'i>;
type Entry<'a, 'i> = (
    &'a Spanned<std::borrow::Cow<'i, str>>,
    &'a Spanned<DeValue<'i>>,
);

struct Walker<'t> {
    text: &'t str,
    errors: Vec<ConfigError>,
}

/// The keys of one table that the walker has already read, so the rest can be called unknown.
struct Keys<'a, 'i> {
    path: String,
    table: &'a Table<'i>,
    known: Vec<&'static str>,
}

impl<'a, 'i> Keys<'a, 'i> {
    fn new(path: &str, table: &'a Table<'i>) -> Self {
        Keys {
            path: path.to_owned(),
            table,
            known: Vec::new(),
        }
    }

    fn full(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{}", self.path, key)
        }
    }

    fn get(&mut self, key: &'static str) -> Option<Entry<'a, 'i>> {
        self.known.push(key);
        self.table.iter().find(|(k, _)| k.get_ref().as_ref() == key)
    }
}

impl Walker<'_> {
    fn error(&mut self, span: Range<usize>, message: String) {
        let upto = &self.text[..span.start.min(self.text.len())];
        let line = upto.matches('\n').count() + 1;
        let col = upto.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        self.errors.push(ConfigError { line, col, message });
    }

    fn finish(&mut self, keys: Keys<'_, '_>) {
        for (k, _) in keys.table.iter() {
            if !keys.known.contains(&k.get_ref().as_ref()) {
                let name = keys.full(k.get_ref());
                self.error(k.span(), format!("{name}: unknown key"));
            }
        }
    }

    fn table<'a, 'i>(
        &mut self,
        keys: &mut Keys<'a, 'i>,
        key: &'static str,
    ) -> Option<Keys<'a, 'i>> {
        let name = keys.full(key);
        let (k, v) = keys.get(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(Keys::new(&name, t)),
            other => {
                self.error(
                    k.span(),
                    format!("{name}: expected a table, found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn string(
        &mut self,
        keys: &mut Keys<'_, '_>,
        key: &'static str,
    ) -> Option<(String, Range<usize>)> {
        let name = keys.full(key);
        let (k, v) = keys.get(key)?;
        match v.get_ref() {
            DeValue::String(s) if s.is_empty() => {
                self.error(k.span(), format!("{name}: must not be empty"));
                None
            }
            DeValue::String(s) => Some((s.to_string(), k.span())),
            other => {
                self.error(
                    k.span(),
                    format!("{name}: expected a string, found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn boolean(&mut self, keys: &mut Keys<'_, '_>, key: &'static str) -> Option<bool> {
        let name = keys.full(key);
        let (k, v) = keys.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                self.error(
                    k.span(),
                    format!("{name}: expected true or false, found {}", other.type_str()),
                );
                None
            }
        }
    }

    /// A whole number within `[min, max]`.
    fn uint(
        &mut self,
        keys: &mut Keys<'_, '_>,
        key: &'static str,
        min: u32,
        max: u32,
        unit: &str,
    ) -> Option<u32> {
        let name = keys.full(key);
        let (k, v) = keys.get(key)?;
        let parsed = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            other => {
                self.error(
                    k.span(),
                    format!(
                        "{name}: expected a whole number, found {}",
                        other.type_str()
                    ),
                );
                return None;
            }
        };
        match parsed {
            Some(n) if n >= i64::from(min) && n <= i64::from(max) => u32::try_from(n).ok(),
            _ => {
                self.error(
                    k.span(),
                    format!("{name}: must be a whole number of {unit} from {min} to {max}"),
                );
                None
            }
        }
    }

    /// A percentage in `[0, 100]`; integers are accepted too.
    fn percent(
        &mut self,
        keys: &mut Keys<'_, '_>,
        key: &'static str,
    ) -> Option<(f64, Range<usize>)> {
        let name = keys.full(key);
        let (k, v) = keys.get(key)?;
        let parsed = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64),
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            other => {
                self.error(
                    k.span(),
                    format!("{name}: expected a number, found {}", other.type_str()),
                );
                return None;
            }
        };
        match parsed {
            Some(p) if (0.0..=100.0).contains(&p) => Some((p, k.span())),
            _ => {
                self.error(
                    k.span(),
                    format!("{name}: must be a percentage from 0 to 100"),
                );
                None
            }
        }
    }

    fn document(&mut self, doc: &Table<'_>) -> Config {
        let mut c = Config::default();
        let mut root = Keys::new("", doc);

        if let Some(mut t) = self.table(&mut root, "storage") {
            if let Some((s, _)) = self.string(&mut t, "recordings_dir") {
                c.storage.recordings_dir = s.into();
            }
            if let Some((s, _)) = self.string(&mut t, "index_path") {
                c.storage.index_path = s.into();
            }
            self.finish(t);
        }

        if let Some(mut t) = self.table(&mut root, "recording") {
            if let Some(n) = self.uint(&mut t, "segment_seconds", 1, 86_400, "seconds") {
                c.recording.segment_seconds = n;
            }
            if let Some((s, at)) = self.string(&mut t, "source_template") {
                let probe = s.replace("{stream_id}", "x");
                if let Err(why) = check_url(&probe) {
                    self.error(at, format!("recording.source_template: {why}"));
                } else if probe.contains(['{', '}']) {
                    self.error(
                        at,
                        "recording.source_template: the only placeholder is {stream_id}".into(),
                    );
                }
                c.recording.source_template = s;
            }
            if let Some((s, _)) = self.string(&mut t, "ffmpeg_path") {
                c.recording.ffmpeg_path = s;
            }
            if let Some((s, at)) = self.string(&mut t, "audio") {
                match s.as_str() {
                    "auto" => c.recording.audio = AudioMode::Auto,
                    "copy" => c.recording.audio = AudioMode::Copy,
                    "off" => c.recording.audio = AudioMode::Off,
                    _ => self.error(
                        at,
                        format!("recording.audio: {s:?} is not one of \"auto\", \"copy\", \"off\""),
                    ),
                }
            }
            self.finish(t);
        }

        if let Some(mut t) = self.table(&mut root, "retention") {
            if let Some(n) = self.uint(&mut t, "default_days", 0, 36_500, "days") {
                c.retention.default_days = n;
            }
            if let Some(n) = self.uint(&mut t, "check_interval_seconds", 1, 86_400, "seconds") {
                c.retention.check_interval_seconds = n;
            }
            let min = self.percent(&mut t, "min_free_percent");
            let target = self.percent(&mut t, "target_free_percent");
            if let Some((p, _)) = min {
                c.retention.min_free_percent = p;
            }
            if let Some((p, _)) = target {
                c.retention.target_free_percent = p;
            }
            if c.retention.target_free_percent < c.retention.min_free_percent {
                let at = target.or(min).map_or(0..0, |(_, at)| at);
                self.error(
                    at,
                    format!(
                        "retention.target_free_percent: {} is below retention.min_free_percent ({})",
                        c.retention.target_free_percent, c.retention.min_free_percent
                    ),
                );
            }
            self.finish(t);
        }

        if let Some(mut t) = self.table(&mut root, "http") {
            if let Some((s, at)) = self.string(&mut t, "listen") {
                match s.parse::<SocketAddr>() {
                    Ok(a) => c.http.listen = a,
                    Err(_) => self.error(
                        at,
                        format!("http.listen: {s:?} is not an address like \"0.0.0.0:8080\""),
                    ),
                }
            }
            self.finish(t);
        }

        if let Some((k, v)) = root.get("streams") {
            match v.get_ref() {
                DeValue::Array(items) => {
                    let mut seen = HashSet::new();
                    for (i, item) in items.iter().enumerate() {
                        if let Some(s) = self.stream(i, item, &c, &mut seen) {
                            c.streams.push(s);
                        }
                    }
                }
                other => self.error(
                    k.span(),
                    format!(
                        "streams: expected an array of tables ([[streams]]), found {}",
                        other.type_str()
                    ),
                ),
            }
        }
        self.finish(root);
        c
    }

    fn stream(
        &mut self,
        i: usize,
        item: &Spanned<DeValue<'_>>,
        c: &Config,
        seen: &mut HashSet<String>,
    ) -> Option<Stream> {
        let path = format!("streams[{i}]");
        let DeValue::Table(table) = item.get_ref() else {
            self.error(
                item.span(),
                format!(
                    "{path}: expected a table, found {}",
                    item.get_ref().type_str()
                ),
            );
            return None;
        };
        let mut t = Keys::new(&path, table);
        let id = match self.string(&mut t, "id") {
            Some((id, at)) if !valid_stream_id(&id) => {
                self.error(
                    at,
                    format!(
                        "{path}.id: {id:?} is not a valid stream id ([a-z0-9][a-z0-9_-]{{0,63}})"
                    ),
                );
                None
            }
            Some((id, at)) if !seen.insert(id.clone()) => {
                self.error(
                    at,
                    format!("{path}.id: {id:?} is used by an earlier stream"),
                );
                None
            }
            Some((id, _)) => Some(id),
            None => {
                if t.table.iter().all(|(k, _)| k.get_ref().as_ref() != "id") {
                    self.error(
                        item.span(),
                        format!("{path}.id: missing; every stream needs an id"),
                    );
                }
                None
            }
        };
        let name = self.string(&mut t, "name").map(|(s, _)| s);
        let url = match self.string(&mut t, "url") {
            Some((u, at)) => match check_url(&u) {
                Ok(()) => Some(u),
                Err(why) => {
                    self.error(at, format!("{path}.url: {why}"));
                    None
                }
            },
            None => None,
        };
        let enabled = self.boolean(&mut t, "enabled").unwrap_or(true);
        let retention_days = self.uint(&mut t, "retention_days", 0, 36_500, "days");
        let segment_seconds = self.uint(&mut t, "segment_seconds", 1, 86_400, "seconds");
        self.finish(t);
        let id = id?;
        Some(Stream {
            name: name.unwrap_or_else(|| id.clone()),
            url: url.unwrap_or_else(|| c.recording.source_template.replace("{stream_id}", &id)),
            enabled,
            retention_days: retention_days.unwrap_or(c.retention.default_days),
            segment_seconds: segment_seconds.unwrap_or(c.recording.segment_seconds),
            id,
        })
    }
}

/// Streams come from cameras or go2rtc, so only RTSP URLs with a host make sense.
fn check_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("{url:?} is not a URL; expected rtsp://host/path"));
    };
    if !scheme.eq_ignore_ascii_case("rtsp") && !scheme.eq_ignore_ascii_case("rtsps") {
        return Err(format!("{url:?} is not rtsp:// or rtsps://"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("{url:?} has no host"));
    }
    if url.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
        return Err(format!("{url:?} contains white space"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
        let text = include_str!("../config/wallflower-nvr.toml");
        let c = parse(text).unwrap();
        assert!(!c.streams.is_empty());
    }
}
