//! What the handlers share: the store, the config, the recorder statuses, and small caches of
//! recent answers (listings, served layouts, fragment indexes, stitched plans).

use super::*;

/// What the HTTP handlers share with the rest of the daemon.
pub struct Shared {
    pub store: Arc<Store>,
    pub auth: Arc<crate::auth::Auth>,
    /// The listener speaks HTTPS: cookies get `Secure`.
    pub tls: bool,
    pub config: RwLock<Arc<Config>>,
    pub statuses: Statuses,
    pub counters: Arc<retention::Counters>,
    pub(super) layouts: Recent<LayoutKey, Arc<Layout>>,
    pub(super) listings: Recent<ListingKey, Bytes>,
    pub(super) fragments: Recent<FileKey, Arc<media::Fragments>>,
    pub(super) plans: Recent<PlanKey, (Arc<stitch::Plan>, std::time::Instant)>,
    /// Recent snapshots: (stream, time, width) → JPEG and when it was made.
    pub(super) snapshots: Recent<(String, Option<i64>, u32), (Bytes, std::time::Instant)>,
    /// Started by the first live viewer.
    pub(super) live: std::sync::Mutex<Option<Arc<live::Hub>>>,
    /// The config file, when there is one (not in the demo).
    pub config_path: Option<PathBuf>,
    /// Saves through the API, one at a time.
    pub(super) config_save: std::sync::Mutex<()>,
    /// How many reloads the daemon has handled, and a wake-up for those who wait on one.
    reloads: (std::sync::Mutex<u64>, std::sync::Condvar),
}

/// (path, size, mtime) of a file whose fragments were read: a file that changes misses.
pub(super) type FileKey = (PathBuf, u64, Option<std::time::SystemTime>);

/// (stream, start, end) of a stitched playback.
pub(super) type PlanKey = (String, Option<i64>, Option<i64>);

/// How long a stitched playback whose footage may still grow is served unchanged, so that the
/// range requests of one player see one file; a closed range is reused while its files last.
pub(super) const OPEN_PLAN_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// (stream, start, end, index generation) of a recordings listing. An entry is only ever
/// found while the index is at the generation it was made from, so it is never stale.
pub(super) type ListingKey = (String, Option<i64>, Option<i64>, u64);

/// (id, size, mtime) of a served layout: a file that changes misses.
pub(super) type LayoutKey = (u64, u64, Option<std::time::SystemTime>);

/// The last few answers of one kind, the oldest dropped first, bounded in entries and in
/// bytes. Listings are cached because the UI asks for the same day again and again; layouts so
/// the seeks of a player do not walk the file's fragments on every request.
pub(super) struct Recent<K, V> {
    pub(super) size: usize,
    pub(super) max_bytes: usize,
    pub(super) items: std::sync::Mutex<Vec<(K, V, usize)>>,
}

impl<K: PartialEq, V: Clone> Recent<K, V> {
    pub(super) fn new(size: usize, max_bytes: usize) -> Self {
        Recent {
            size,
            max_bytes,
            items: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub(super) fn get(&self, key: &K) -> Option<V> {
        let items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        items
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, _)| v.clone())
    }

    /// Adds `key`, of about `bytes`, first dropping the entries it supersedes and then the
    /// oldest until it fits. A value larger than the whole budget is not kept.
    pub(super) fn insert(&self, key: K, value: V, bytes: usize, supersedes: impl Fn(&K) -> bool) {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        items.retain(|(k, _, _)| !supersedes(k) && *k != key);
        if bytes > self.max_bytes {
            return;
        }
        let mut held: usize = items.iter().map(|i| i.2).sum();
        while !items.is_empty() && (items.len() >= self.size || held + bytes > self.max_bytes) {
            held -= items.remove(0).2;
        }
        items.push((key, value, bytes));
    }

    /// How many entries and bytes are held.
    #[cfg(test)]
    pub(super) fn held(&self) -> (usize, usize) {
        let items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        (items.len(), items.iter().map(|i| i.2).sum())
    }
}

impl Shared {
    pub fn new(
        store: Arc<Store>,
        auth: Arc<crate::auth::Auth>,
        config: Config,
        statuses: Statuses,
        counters: Arc<retention::Counters>,
    ) -> Shared {
        Shared {
            store,
            auth,
            tls: config.http.tls_cert.is_some(),
            config: RwLock::new(Arc::new(config)),
            statuses,
            counters,
            layouts: Recent::new(16, 2 << 20),
            listings: Recent::new(32, 2 << 20),
            // A day of 15-minute segments, so a player seeking through a day re-reads none.
            fragments: Recent::new(128, 4 << 20),
            plans: Recent::new(8, 4 << 20),
            snapshots: Recent::new(32, 2 << 20),
            live: std::sync::Mutex::new(None),
            config_path: None,
            config_save: std::sync::Mutex::new(()),
            reloads: (std::sync::Mutex::new(0), std::sync::Condvar::new()),
        }
    }

    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_config(&self, c: Config) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(c);
    }

    /// The daemon handled a reload (applied, unchanged or refused).
    pub fn reloaded(&self) {
        *self.reloads.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.reloads.1.notify_all();
    }

    pub(super) fn reload_count(&self) -> u64 {
        *self.reloads.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits (blocking) until a reload after `seen` has been handled; false on timeout.
    pub(super) fn wait_reload(&self, seen: u64, timeout: std::time::Duration) -> bool {
        let n = self.reloads.0.lock().unwrap_or_else(|e| e.into_inner());
        let (n, _) = self
            .reloads
            .1
            .wait_timeout_while(n, timeout, |n| *n <= seen)
            .unwrap_or_else(|e| e.into_inner());
        *n > seen
    }

    pub(super) fn live_hub(&self) -> Result<Arc<live::Hub>> {
        let mut hub = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = &*hub {
            return Ok(h.clone());
        }
        let h = Arc::new(live::Hub::start()?);
        *hub = Some(h.clone());
        Ok(h)
    }

    /// Ends every live view, so a stopping server is not kept waiting by endless responses.
    pub fn close_live(&self) {
        if let Some(h) = self.live.lock().unwrap_or_else(|e| e.into_inner()).take() {
            h.close();
        }
    }

    pub(super) fn recordings_dir(&self) -> PathBuf {
        self.config().storage.recordings_dir.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::Recent;

    #[test]
    fn recent_is_bounded_in_entries_and_in_bytes() {
        let r: Recent<u32, u32> = Recent::new(4, 100);
        for k in 0..10 {
            r.insert(k, k, 10, |_| false);
        }
        assert_eq!(r.held(), (4, 40));
        assert_eq!(r.get(&9), Some(9));
        assert_eq!(r.get(&5), None, "the oldest go first");
        r.insert(20, 20, 90, |_| false);
        assert_eq!(r.held(), (2, 100), "the oldest made room");
        assert_eq!(r.get(&9), Some(9));
        r.insert(21, 21, 101, |_| false);
        assert_eq!(r.get(&21), None, "larger than the budget: not kept");
        r.insert(20, 7, 5, |_| false);
        assert_eq!(
            (r.get(&20), r.held()),
            (Some(7), (2, 15)),
            "a key replaces itself"
        );
    }
}
