//! The files under `storage.state_dir`: written whole and atomically (a temp file in the same
//! folder, fsync, rename, fsync of the folder), readable only by the daemon's user, and changed
//! under a lock so that the CLI and the daemon never lose each other's edits.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};

/// Creates `dir` (mode 0700) if it is missing.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        std::fs::create_dir_all(dir).map_err(|e| Error::from(e).context(dir.display()))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

/// Replaces `path` with `bytes` (mode 0600) so that a crash leaves the old or the new file,
/// never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let ctx = |e: std::io::Error| Error::from(e).context(path.display());
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(ctx)?;
        f.write_all(bytes).map_err(ctx)?;
        f.sync_all().map_err(ctx)?;
    }
    std::fs::rename(&tmp, path).map_err(ctx)?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(ctx)?;
    Ok(())
}

/// An exclusive lock on `{dir}/.lock`, held until dropped.
pub struct DirLock(#[allow(dead_code)] Flock<File>);

pub fn lock(dir: &Path) -> Result<DirLock> {
    let path: PathBuf = dir.join(".lock");
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::from(e).context(path.display()))?;
    Flock::lock(f, FlockArg::LockExclusive)
        .map(DirLock)
        .map_err(|(_, e)| Error::internal(format!("{}: {e}", path.display())))
}

/// The file's text, or `None` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::from(e).context(path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_whole_files_with_private_modes() {
        let dir = std::env::temp_dir().join(format!("wf-files-{}", std::process::id()));
        ensure_dir(&dir).unwrap();
        let p = dir.join("x.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(read_optional(&p).unwrap().unwrap(), b"two");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(read_optional(&dir.join("none")).unwrap().is_none());
        let _l = lock(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
