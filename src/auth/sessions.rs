//! Browser sessions: a random 256-bit id in the cookie, only its SHA-256 kept, here in memory
//! and in `{state_dir}/sessions.json` so a restart logs nobody out. A session ends at logout,
//! when its user is deleted or changes password, after [`IDLE_MS`] unused, and
//! `auth.session_days` after login whatever happens.
//!
//! Checking a session touches memory only. The last-use time is written back at most every
//! [`TOUCH_SAVE_MS`], so browsing does not write to the card on every request.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

use super::files;

pub const FILE: &str = "sessions.json";
/// A session unused this long ends (or sooner, if `session_days` is shorter).
pub const IDLE_MS: i64 = 7 * 86_400_000;
/// How stale the saved last-use time may be.
pub const TOUCH_SAVE_MS: i64 = 3_600_000;
/// The most sessions kept; past it the least recently used ends. Bounds memory and the file.
pub const MAX_SESSIONS: usize = 1000;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Session {
    pub username: String,
    pub created_ms: i64,
    pub last_seen_ms: i64,
}

#[derive(Default)]
pub struct Sessions {
    /// By the hex SHA-256 of the id.
    by_hash: HashMap<String, Session>,
    /// The greatest `last_seen_ms` that is not saved yet, if any is newer than the file's.
    dirty: bool,
}

impl Sessions {
    pub fn load(dir: &Path) -> Sessions {
        let path = dir.join(FILE);
        let by_hash = match files::read_optional(&path) {
            Ok(Some(b)) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                log::warn!(
                    "auth: {} cannot be read ({e}); everyone logs in again",
                    path.display()
                );
                HashMap::new()
            }),
            Ok(None) => HashMap::new(),
            Err(e) => {
                log::warn!("auth: {e}; everyone logs in again");
                HashMap::new()
            }
        };
        Sessions {
            by_hash,
            dirty: false,
        }
    }

    /// The text to save, and clears the dirty mark.
    pub fn snapshot(&mut self) -> Result<Vec<u8>> {
        self.dirty = false;
        serde_json::to_vec(&self.by_hash).map_err(|e| Error::internal(format!("sessions: {e}")))
    }

    pub fn insert(&mut self, hash: String, username: &str, now_ms: i64, max_age_ms: i64) {
        self.expire(now_ms, max_age_ms);
        if self.by_hash.len() >= MAX_SESSIONS
            && let Some(oldest) = self
                .by_hash
                .iter()
                .min_by_key(|(_, s)| s.last_seen_ms)
                .map(|(h, _)| h.clone())
        {
            self.by_hash.remove(&oldest);
        }
        self.by_hash.insert(
            hash,
            Session {
                username: username.to_owned(),
                created_ms: now_ms,
                last_seen_ms: now_ms,
            },
        );
    }

    /// The user of a live session, marking it used. The second value says whether the
    /// file is stale enough to be saved.
    pub fn check(&mut self, hash: &str, now_ms: i64, max_age_ms: i64) -> (Option<String>, bool) {
        let Some(s) = self.by_hash.get_mut(hash) else {
            return (None, false);
        };
        let idle = IDLE_MS.min(max_age_ms);
        if now_ms - s.created_ms >= max_age_ms || now_ms - s.last_seen_ms >= idle {
            self.by_hash.remove(hash);
            self.dirty = true;
            return (None, true);
        }
        let save = now_ms - s.last_seen_ms >= TOUCH_SAVE_MS;
        if now_ms > s.last_seen_ms {
            s.last_seen_ms = now_ms;
        }
        self.dirty |= save;
        (Some(s.username.clone()), save)
    }

    pub fn remove(&mut self, hash: &str) -> bool {
        self.by_hash.remove(hash).is_some()
    }

    /// Ends every session of `username` but `keep`. Returns whether any ended.
    pub fn end_user(&mut self, username: &str, keep: Option<&str>) -> bool {
        let before = self.by_hash.len();
        self.by_hash
            .retain(|h, s| s.username != username || Some(h.as_str()) == keep);
        before != self.by_hash.len()
    }

    /// Ends the sessions of users that no longer exist.
    pub fn retain_users(&mut self, exists: impl Fn(&str) -> bool) -> bool {
        let before = self.by_hash.len();
        self.by_hash.retain(|_, s| exists(&s.username));
        before != self.by_hash.len()
    }

    fn expire(&mut self, now_ms: i64, max_age_ms: i64) {
        let idle = IDLE_MS.min(max_age_ms);
        self.by_hash
            .retain(|_, s| now_ms - s.created_ms < max_age_ms && now_ms - s.last_seen_ms < idle);
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn sessions_end_when_idle_and_when_old() {
        let mut s = Sessions::default();
        s.insert("h1".into(), "ann", 0, 30 * DAY);
        // Used every 6 days: idle never ends it, but age does at 30 days.
        let mut t = 0;
        while t + 6 * DAY < 30 * DAY {
            t += 6 * DAY;
            assert_eq!(
                s.check("h1", t, 30 * DAY).0.as_deref(),
                Some("ann"),
                "at {t}"
            );
        }
        assert_eq!(s.check("h1", 30 * DAY, 30 * DAY).0, None);
        // Unused for 7 days: idle.
        s.insert("h2".into(), "ann", 0, 30 * DAY);
        assert_eq!(
            s.check("h2", 7 * DAY - 1, 30 * DAY).0.as_deref(),
            Some("ann")
        );
        assert_eq!(s.check("h2", 14 * DAY - 1, 30 * DAY).0, None);
        // session_days = 1 shortens the idle time too.
        s.insert("h3".into(), "ann", 0, DAY);
        assert_eq!(s.check("h3", DAY, DAY).0, None);
    }

    #[test]
    fn use_is_saved_rarely_and_the_count_is_bounded() {
        let mut s = Sessions::default();
        s.insert("h".into(), "ann", 0, 30 * DAY);
        assert!(!s.check("h", 1000, 30 * DAY).1);
        assert!(s.check("h", 1000 + TOUCH_SAVE_MS, 30 * DAY).1);
        for i in 0..MAX_SESSIONS + 10 {
            s.insert(format!("x{i}"), "bob", 2000 + i as i64, 30 * DAY);
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(s.end_user("bob", Some("x1009")));
        assert_eq!(s.len(), 2, "ann's session and the one kept");
    }
}
