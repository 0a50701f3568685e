//! Accounts and access (SPEC §5): users and roles, sessions, API tokens, signed URLs, login
//! throttling, the first-run setup code and the audit log, all kept under
//! `storage.state_dir` and never in the index, so rebuilding the index loses none of them.
//!
//! Invariants:
//! - Only hashes of secrets are stored: Argon2id for passwords, SHA-256 for session ids and
//!   tokens. No secret is ever logged.
//! - Deciding who a request is ([`Auth::session`], [`Auth::token`]) reads memory only; it
//!   never blocks. Hashing, file writes and the audit log run on the blocking pool.
//! - Time comes from the injected [`Clock`], so expiry and throttling are testable.
//! - Setup mode holds exactly while no user exists.

pub mod accounts;
pub mod audit;
pub mod files;
mod manage;
pub mod password;
pub mod secret;
pub mod sessions;
pub mod sign;
pub mod throttle;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Kind, Result};
use crate::time::Clock;

pub use accounts::{Accounts, Token, User};
use sessions::Sessions;
use throttle::Throttle;

pub const SETUP_CODE_FILE: &str = "setup-code";
/// The session cookie's name (SPEC §5).
pub const COOKIE: &str = "wf_session";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Who a request is, and how it proved it.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub username: String,
    pub role: Role,
    pub via: Via,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Via {
    /// The session cookie; the value is the hash of the session id.
    Session(String),
    /// An API token, by its public id.
    Token(String),
    /// A signed URL.
    Signed,
    /// `auth.enabled = false`: everyone is admin.
    Open,
}

impl Identity {
    /// How the audit log names this caller.
    pub fn audit_name(&self) -> String {
        match &self.via {
            Via::Token(id) => format!("token:{id}"),
            _ => self.username.clone(),
        }
    }
}

/// A new session: the cookie's value (shown once, never stored) and the user it is for.
pub struct NewSession {
    pub secret: String,
    pub username: String,
    pub role: Role,
}

pub struct Auth {
    dir: PathBuf,
    clock: Arc<dyn Clock>,
    accounts: RwLock<Arc<Accounts>>,
    sessions: Arc<Mutex<Sessions>>,
    throttle: Mutex<Throttle>,
    setup_code: Mutex<Option<String>>,
    sign_key: [u8; 32],
    pub audit: audit::Audit,
    saver: Mutex<std::sync::mpsc::Sender<()>>,
    /// Held while the accounts file and the memory are brought in line, so that the watch
    /// never sees this process's own write as a change made elsewhere.
    edit: Mutex<()>,
}

impl Auth {
    /// Opens the state folder, creating it and the signing key if missing. With no user, the
    /// box enters setup mode with a fresh code.
    pub fn open(dir: &Path, clock: Arc<dyn Clock>) -> Result<Auth> {
        files::ensure_dir(dir)?;
        let accounts = Accounts::load(dir)?;
        let sessions = Arc::new(Mutex::new(Sessions::load(dir)));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let saved = sessions.clone();
        let path = dir.join(sessions::FILE);
        std::thread::Builder::new()
            .name("auth-save".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    while rx.try_recv().is_ok() {}
                    save_sessions(&saved, &path);
                }
            })
            .map_err(|e| Error::internal(format!("auth thread: {e}")))?;
        let auth = Auth {
            dir: dir.to_owned(),
            clock,
            accounts: RwLock::new(Arc::new(accounts)),
            sessions,
            throttle: Mutex::new(Throttle::default()),
            setup_code: Mutex::new(None),
            sign_key: sign::load_key(dir)?,
            audit: audit::Audit::new(dir),
            saver: Mutex::new(tx),
            edit: Mutex::new(()),
        };
        auth.after_change()?;
        Ok(auth)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn accounts(&self) -> Arc<Accounts> {
        self.accounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn setup_needed(&self) -> bool {
        self.accounts().users.is_empty()
    }

    /// Re-reads the accounts file (the CLI may have changed it) and brings setup mode and the
    /// sessions in line with it.
    pub fn reload(&self) -> Result<()> {
        let _edit = self.edit.lock().unwrap_or_else(|e| e.into_inner());
        let new = Accounts::load(&self.dir)?;
        let old = self.accounts();
        // A password changed elsewhere (`user passwd`) ends that user's sessions.
        let changed: Vec<String> = new
            .users
            .iter()
            .filter(|u| old.user(&u.username).is_some_and(|o| o.hash != u.hash))
            .map(|u| u.username.clone())
            .collect();
        *self.accounts.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
        let mut ended = false;
        for name in &changed {
            ended |= self
                .sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .end_user(name, None);
        }
        if ended {
            self.save_soon();
        }
        self.after_change()
    }

    /// Changes the accounts file under its lock and brings the memory in line.
    fn commit<T>(&self, f: impl FnOnce(&mut Accounts) -> Result<T>) -> Result<(Arc<Accounts>, T)> {
        let _edit = self.edit.lock().unwrap_or_else(|e| e.into_inner());
        let (a, out) = Accounts::modify(&self.dir, f)?;
        let a = Arc::new(a);
        *self.accounts.write().unwrap_or_else(|e| e.into_inner()) = a.clone();
        self.after_change()?;
        Ok((a, out))
    }

    fn after_change(&self) -> Result<()> {
        let a = self.accounts();
        let code_path = self.dir.join(SETUP_CODE_FILE);
        let mut code = self.setup_code.lock().unwrap_or_else(|e| e.into_inner());
        if a.users.is_empty() {
            if code.is_none() {
                let c = secret::setup_code()?;
                files::write_atomic(&code_path, format!("{c}\n").as_bytes())?;
                log::warn!(
                    "auth: no user exists yet; open the web UI and set up the first admin with the \
                     one-time setup code {c} (also in {})",
                    code_path.display()
                );
                *code = Some(c);
            }
        } else if code.take().is_some() || code_path.exists() {
            let _ = std::fs::remove_file(&code_path);
        }
        drop(code);
        let gone = {
            let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            s.retain_users(|u| a.user(u).is_some())
        };
        if gone {
            self.save_soon();
        }
        Ok(())
    }

    fn save_soon(&self) {
        let _ = self
            .saver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(());
    }

    /// Writes the sessions now (at shutdown).
    pub fn flush(&self) {
        save_sessions(&self.sessions, &self.dir.join(sessions::FILE));
    }

    /// `Err` with [`Kind::TooManyRequests`] while `addr` must wait.
    pub fn admit(&self, addr: IpAddr) -> Result<()> {
        let t = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
        t.admit(addr, self.now_ms()).map_err(|wait_ms| {
            Error::new(
                Kind::TooManyRequests,
                format!(
                    "too many failed attempts; try again in {} s",
                    (wait_ms + 999) / 1000
                ),
            )
        })
    }

    /// Seconds until `addr` may try again, for `Retry-After`.
    pub fn retry_after_s(&self, addr: IpAddr) -> Option<i64> {
        let t = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
        t.admit(addr, self.now_ms())
            .err()
            .map(|ms| (ms + 999) / 1000)
    }

    fn failed(&self, addr: IpAddr) {
        self.throttle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failed(addr, self.now_ms());
    }

    fn new_session(&self, user: &User, max_age_ms: i64) -> Result<NewSession> {
        let secret = secret::hex(&secret::random_bytes::<32>()?);
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                secret::digest(&secret),
                &user.username,
                self.now_ms(),
                max_age_ms,
            );
        self.save_soon();
        Ok(NewSession {
            secret,
            username: user.username.clone(),
            role: user.role,
        })
    }

    /// Checks a password. Blocking (the hash takes a while on purpose). Unknown users and
    /// wrong passwords take the same time and give the same error.
    pub fn login(
        &self,
        username: &str,
        pw: &str,
        addr: IpAddr,
        max_age_ms: i64,
    ) -> Result<NewSession> {
        self.admit(addr)?;
        let a = self.accounts();
        let user = a.user(username);
        if !password::verify(pw, user.map(|u| u.hash.as_str())) {
            self.failed(addr);
            log::warn!("auth: login failed for user {username:?} from {addr}");
            self.record(username, addr, "login_failed", "");
            return Err(Error::new(
                Kind::Unauthorized,
                "wrong user name or password",
            ));
        }
        let user = user.ok_or_else(|| Error::internal("verified without a user"))?;
        self.throttle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .succeeded(addr);
        self.record(username, addr, "login", "");
        self.new_session(user, max_age_ms)
    }

    /// Creates the first admin with the setup code, and logs them in. Blocking.
    pub fn setup(
        &self,
        code: &str,
        username: &str,
        pw: &str,
        addr: IpAddr,
        max_age_ms: i64,
    ) -> Result<NewSession> {
        self.admit(addr)?;
        if !self.setup_needed() {
            return Err(Error::new(Kind::Conflict, "the box is already set up"));
        }
        let norm = |s: &str| -> String {
            s.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .map(|c| c.to_ascii_uppercase())
                .collect()
        };
        let expected = self
            .setup_code
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default();
        if expected.is_empty() || !secret::same(norm(code).as_bytes(), norm(&expected).as_bytes()) {
            self.failed(addr);
            log::warn!("auth: wrong setup code from {addr}");
            return Err(Error::new(Kind::Forbidden, "the setup code is not right"));
        }
        let user = self.add_user(username, pw, Role::Admin, Some("setup"), addr)?;
        self.new_session(&user, max_age_ms)
    }

    /// The identity of a session cookie's value. Memory only.
    pub fn session(&self, secret: &str, max_age_ms: i64) -> Option<Identity> {
        let hash = secret::digest(secret);
        let (user, save) = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check(&hash, self.now_ms(), max_age_ms);
        if save {
            self.save_soon();
        }
        let a = self.accounts();
        let u = a.user(&user?)?;
        Some(Identity {
            username: u.username.clone(),
            role: u.role,
            via: Via::Session(hash),
        })
    }

    /// The identity of an API token. Memory only.
    pub fn token(&self, token: &str) -> Option<Identity> {
        let hash = secret::digest(token);
        let a = self.accounts();
        let t = a
            .tokens
            .iter()
            .find(|t| secret::same(t.hash.as_bytes(), hash.as_bytes()))?;
        Some(Identity {
            username: t.name.clone(),
            role: t.role,
            via: Via::Token(t.id.clone()),
        })
    }

    pub fn logout(&self, session_hash: &str) {
        if self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(session_hash)
        {
            self.save_soon();
        }
    }

    /// A signed URL for `path_and_query`, valid for `ttl_s`.
    pub fn sign(&self, path_and_query: &str, user: &str, ttl_s: i64) -> (String, i64) {
        let exp_s = self.now_ms() / 1000 + ttl_s;
        (
            sign::sign(&self.sign_key, path_and_query, user, exp_s),
            exp_s,
        )
    }

    /// The viewer identity of a signed request, if its signature holds, has not expired, and
    /// its signer still exists.
    pub fn signed(&self, path: &str, query: &str) -> Result<Identity> {
        let user = sign::verify(&self.sign_key, path, query, self.now_ms())?;
        if self.accounts().user(&user).is_none() {
            return Err(Error::new(
                Kind::Unauthorized,
                "the signer no longer exists",
            ));
        }
        Ok(Identity {
            username: user,
            role: Role::Viewer,
            via: Via::Signed,
        })
    }

    /// Appends to the audit log. Blocking.
    pub fn record(&self, user: &str, addr: IpAddr, action: &str, target: &str) {
        self.audit.record(&audit::Entry {
            time_ms: self.now_ms(),
            user: user.to_owned(),
            address: addr.to_string(),
            action: action.to_owned(),
            target: target.to_owned(),
        });
    }

    /// Watches the state folder, so users the CLI adds or changes apply at once.
    pub fn watch(self: &Arc<Self>) -> Result<()> {
        use inotify::{Inotify, WatchMask};
        let mut inotify = Inotify::init().map_err(|e| Error::from(e).context("inotify"))?;
        inotify
            .watches()
            .add(
                &self.dir,
                WatchMask::CLOSE_WRITE | WatchMask::MOVED_TO | WatchMask::ONLYDIR,
            )
            .map_err(|e| Error::from(e).context(self.dir.display()))?;
        let me = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("auth-watch".into())
            .spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(events) = inotify.read_events_blocking(&mut buf) {
                    let ours = events
                        .into_iter()
                        .any(|e| e.name.is_some_and(|n| n == accounts::FILE));
                    let Some(auth) = me.upgrade() else { return };
                    if ours && let Err(e) = auth.reload() {
                        log::error!("auth: {e}");
                    }
                }
            })
            .map_err(|e| Error::internal(format!("auth watch thread: {e}")))?;
        Ok(())
    }
}

fn save_sessions(sessions: &Mutex<Sessions>, path: &Path) {
    let text = sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .snapshot();
    if let Err(e) = text.and_then(|t| files::write_atomic(path, &t)) {
        log::error!("auth: saving sessions: {e}");
    }
}

#[cfg(test)]
mod tests;
