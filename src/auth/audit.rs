//! The audit log: who did what and when, one JSON object a line in `{state_dir}/audit.jsonl`.
//! Bounded: past [`MAX_BYTES`] the file becomes `audit.jsonl.1` (replacing the older one), so
//! at most twice that is kept and a query reads at most that much.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const FILE: &str = "audit.jsonl";
pub const MAX_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub time_ms: i64,
    /// Who: a user name, `token:ID`, or empty when nobody was identified.
    pub user: String,
    /// The client's address.
    pub address: String,
    /// What: `login`, `login_failed`, `setup`, `lock`, `unlock`, `delete`, `user_add`, …
    pub action: String,
    /// What it was done to: a recording id, a user name, a token id.
    pub target: String,
}

pub struct Audit {
    path: PathBuf,
    write: Mutex<()>,
}

impl Audit {
    pub fn new(dir: &Path) -> Audit {
        Audit {
            path: dir.join(FILE),
            write: Mutex::new(()),
        }
    }

    /// Appends an entry. Blocking: call it off the executor. A failure is logged, never
    /// returned: the audit log must not make the action itself fail.
    pub fn record(&self, e: &Entry) {
        if let Err(err) = self.append(e) {
            log::error!("audit: {err}");
        }
    }

    fn append(&self, e: &Entry) -> Result<()> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut line = serde_json::to_vec(e).map_err(|e| Error::internal(e.to_string()))?;
        line.push(b'\n');
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() + line.len() as u64 > MAX_BYTES) {
            std::fs::rename(&self.path, self.path.with_extension("jsonl.1"))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)?;
        f.write_all(&line)?;
        Ok(())
    }

    /// The entries in `[start_ms, end_ms]`, oldest first.
    pub fn read(&self, start_ms: Option<i64>, end_ms: Option<i64>) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for p in [self.path.with_extension("jsonl.1"), self.path.clone()] {
            let Some(text) = super::files::read_optional(&p)? else {
                continue;
            };
            for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                // A line cut by a crash is skipped, not an error.
                let Ok(e) = serde_json::from_slice::<Entry>(line) else {
                    continue;
                };
                if start_ms.is_none_or(|s| e.time_ms >= s) && end_ms.is_none_or(|t| e.time_ms <= t)
                {
                    out.push(e);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_kept_in_order_and_the_log_is_bounded() {
        let dir = std::env::temp_dir().join(format!("wf-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = Audit::new(&dir);
        let e = |t: i64| Entry {
            time_ms: t,
            user: "ann".into(),
            address: "192.0.2.1".into(),
            action: "delete".into(),
            target: "x".repeat(200),
        };
        for t in 0..20_000 {
            a.record(&e(t));
        }
        let size = |p: PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
        assert!(size(dir.join(FILE)) <= MAX_BYTES);
        assert!(size(dir.join("audit.jsonl.1")) <= MAX_BYTES);
        let all = a.read(None, None).unwrap();
        assert!(all.len() > 4000 && all.len() < 20_000, "{}", all.len());
        assert_eq!(all.last().unwrap().time_ms, 19_999);
        assert!(all.windows(2).all(|w| w[0].time_ms < w[1].time_ms));
        let some = a.read(Some(19_990), Some(19_994)).unwrap();
        assert_eq!(some.len(), 5);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
