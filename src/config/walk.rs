//! The walk over `toml`'s spanned tree: every key checked against what it may be, every error
//! kept with the line and column of the key it names.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::*;

/// Parses and validates `text`; `path` only names the file in error messages.
pub(super) fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
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

    /// A path where `""` means unset.
    fn path_or_empty(
        &mut self,
        keys: &mut Keys<'_, '_>,
        key: &'static str,
    ) -> Option<(std::path::PathBuf, Range<usize>)> {
        let name = keys.full(key);
        let (k, v) = keys.get(key)?;
        match v.get_ref() {
            DeValue::String(s) if s.is_empty() => None,
            DeValue::String(s) => Some((s.to_string().into(), k.span())),
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
            if let Some((s, _)) = self.string(&mut t, "state_dir") {
                c.storage.state_dir = s.into();
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
            // Empty means unset here (the documented default), so these are read directly.
            let cert = self.path_or_empty(&mut t, "tls_cert");
            let key = self.path_or_empty(&mut t, "tls_key");
            match (cert, key) {
                (Some((c1, _)), Some((k1, _))) => {
                    c.http.tls_cert = Some(c1);
                    c.http.tls_key = Some(k1);
                }
                (Some((_, at)), None) | (None, Some((_, at))) => self.error(
                    at,
                    "http.tls_cert and http.tls_key: set both (PEM files) or neither".into(),
                ),
                (None, None) => {}
            }
            self.finish(t);
        }

        if let Some(mut t) = self.table(&mut root, "auth") {
            if let Some(b) = self.boolean(&mut t, "enabled") {
                c.auth.enabled = b;
            }
            if let Some(n) = self.uint(&mut t, "session_days", 1, 3650, "days") {
                c.auth.session_days = n;
            }
            if let Some(b) = self.boolean(&mut t, "public_metrics") {
                c.auth.public_metrics = b;
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

/// Streams come from cameras or go2rtc, so only RTSP URLs with a host make sense. The message
/// shows the URL without its credentials.
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    check_url_inner(url).map_err(|e| crate::auth::secret::redact_credentials(&e))
}

fn check_url_inner(url: &str) -> Result<(), String> {
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
