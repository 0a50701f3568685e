//! Free space on the recordings filesystem, from `statvfs`.

use std::path::Path;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskUsage {
    pub total_bytes: u64,
    /// Space an unprivileged writer can still use (`f_bavail`), as `df` shows it.
    pub free_bytes: u64,
}

impl DiskUsage {
    pub fn free_percent(&self) -> f64 {
        if self.total_bytes == 0 {
            0.0
        } else {
            self.free_bytes as f64 * 100.0 / self.total_bytes as f64
        }
    }
}

pub fn usage(path: &Path) -> Result<DiskUsage> {
    let s = nix::sys::statvfs::statvfs(path).map_err(|e| {
        Error::new(
            crate::error::Kind::Io,
            format!("statvfs {}: {e}", path.display()),
        )
    })?;
    let frag = s.fragment_size() as u64;
    Ok(DiskUsage {
        total_bytes: s.blocks() as u64 * frag,
        free_bytes: s.blocks_available() as u64 * frag,
    })
}
