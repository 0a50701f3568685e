//! Saving a new config text the way SPEC §6 asks: validated first, then written so that a
//! crash at any moment leaves the old file or the new one whole (a temp file in the same
//! folder, fsync, the old text kept as `config.toml.prev`, rename, fsync of the folder). The
//! rename is what the daemon's config watch sees, so a save is exactly one reload.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Config, ConfigErrors};
use crate::error::{Error, Kind, Result};

/// The entity tag of a config text: its SHA-256, shortened, quoted.
pub fn etag(text: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, text);
    let hex: String = d.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("\"{hex}\"")
}

/// The current text of the config file and its tag.
pub fn read(path: &Path) -> Result<(String, String)> {
    let bytes = std::fs::read(path).map_err(|e| Error::from(e).context(path.display()))?;
    let tag = etag(&bytes);
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::new(Kind::Corrupt, format!("{}: not UTF-8", path.display())))?;
    Ok((text, tag))
}

/// What a save did.
pub enum Saved {
    /// The new text is valid and written; its tag.
    Written(Box<Config>, String),
    /// The text is invalid: nothing was written.
    Invalid(ConfigErrors),
}

fn prev_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".prev");
    PathBuf::from(p)
}

/// Replaces the config file at `path` with `text` if the file still has the tag `if_match`
/// (412 otherwise) and `text` is valid. Callers serialise saves; a hand edit made meanwhile is
/// caught by the tag.
pub fn save(path: &Path, text: &str, if_match: &str) -> Result<Saved> {
    let (_, current) = read(path)?;
    if current != if_match {
        return Err(Error::new(
            Kind::PreconditionFailed,
            "the config changed on the box since it was read; reload it",
        ));
    }
    let config = match Config::parse(text, path) {
        Ok(c) => c,
        Err(e) => return Ok(Saved::Invalid(e)),
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ctx = |e: std::io::Error| Error::from(e).context(path.display());
    let mode = std::fs::metadata(path).map_or(0o640, |m| m.permissions().mode() & 0o777);
    std::fs::copy(path, prev_path(path)).map_err(ctx)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(ctx)?;
        f.write_all(text.as_bytes()).map_err(ctx)?;
        f.sync_all().map_err(ctx)?;
    }
    std::fs::rename(&tmp, path).map_err(ctx)?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(ctx)?;
    Ok(Saved::Written(Box::new(config), etag(text.as_bytes())))
}

/// The keys whose change the running daemon cannot apply without a restart.
pub fn restart_needed(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut check = |changed: bool, key: &'static str| {
        if changed {
            keys.push(key);
        }
    };
    check(
        running.storage.recordings_dir != new.storage.recordings_dir,
        "storage.recordings_dir",
    );
    check(
        running.storage.index_path != new.storage.index_path,
        "storage.index_path",
    );
    check(
        running.storage.state_dir != new.storage.state_dir,
        "storage.state_dir",
    );
    check(running.http.listen != new.http.listen, "http.listen");
    check(running.http.tls_cert != new.http.tls_cert, "http.tls_cert");
    check(running.http.tls_key != new.http.tls_key, "http.tls_key");
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_check_the_tag_and_the_text_and_keep_the_old_file() {
        let dir = std::env::temp_dir().join(format!("wf-save-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("config.toml");
        std::fs::write(&p, "# mine\n[retention]\ndefault_days = 3\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let (text, tag) = read(&p).unwrap();
        assert!(matches!(
            save(&p, "[nope]\n", &tag).unwrap(),
            Saved::Invalid(_)
        ));
        assert_eq!(read(&p).unwrap().0, text, "nothing written");
        let stale = save(&p, "", "\"0\"").err().unwrap();
        assert_eq!(stale.kind, Kind::PreconditionFailed);
        let new = "# mine\n[retention]\ndefault_days = 4\n";
        let Saved::Written(c, t) = save(&p, new, &tag).unwrap() else {
            panic!("valid")
        };
        assert_eq!(c.retention.default_days, 4);
        assert_eq!(read(&p).unwrap(), (new.to_owned(), t));
        assert_eq!(std::fs::read_to_string(prev_path(&p)).unwrap(), text);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        assert_eq!(
            save(&p, new, &tag).err().map(|e| e.kind),
            Some(Kind::PreconditionFailed)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
