//! Users and API tokens, kept in `{state_dir}/accounts.json`. Only hashes are stored: Argon2id
//! for passwords, SHA-256 for tokens (which are long random values, so a slow hash adds
//! nothing). Every change is read-modify-write under the folder's lock, so the CLI and the
//! daemon can both edit the file.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Kind, Result};

use super::{Role, files};

pub const FILE: &str = "accounts.json";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Accounts {
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub tokens: Vec<Token>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub username: String,
    pub role: Role,
    /// The PHC string of the password's Argon2id hash.
    pub hash: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Token {
    /// Public, short: how the token is listed and revoked.
    pub id: String,
    pub name: String,
    pub role: Role,
    /// SHA-256 of the token, in hex.
    pub hash: String,
    pub created_ms: i64,
    pub created_by: String,
}

/// `[A-Za-z0-9._@-]{1,64}`: names that are safe in logs, URLs and file names.
pub fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'@'))
}

impl Accounts {
    /// Reads the file; a missing file is no accounts. A file that cannot be parsed is moved
    /// aside (never deleted) and counts as none, so the box enters setup mode and goes on
    /// recording rather than refusing to start.
    pub fn load(dir: &Path) -> Result<Accounts> {
        let path = dir.join(FILE);
        let Some(bytes) = files::read_optional(&path)? else {
            return Ok(Accounts::default());
        };
        match serde_json::from_slice(&bytes) {
            Ok(a) => Ok(a),
            Err(e) => {
                let aside = dir.join(format!("{FILE}.unreadable"));
                log::error!(
                    "auth: {} cannot be read ({e}); moved to {} and starting with no users",
                    path.display(),
                    aside.display()
                );
                std::fs::rename(&path, &aside)
                    .map_err(|e| Error::from(e).context(aside.display()))?;
                Ok(Accounts::default())
            }
        }
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::internal(format!("accounts: {e}")))?;
        files::write_atomic(&dir.join(FILE), &text)
    }

    /// Applies `f` to the current file under the lock, and saves the result if `f` succeeds.
    pub fn modify<T>(
        dir: &Path,
        f: impl FnOnce(&mut Accounts) -> Result<T>,
    ) -> Result<(Accounts, T)> {
        files::ensure_dir(dir)?;
        let _lock = files::lock(dir)?;
        let mut a = Accounts::load(dir)?;
        let out = f(&mut a)?;
        a.save(dir)?;
        Ok((a, out))
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.username == name)
    }

    pub fn admins(&self) -> usize {
        self.users.iter().filter(|u| u.role == Role::Admin).count()
    }

    /// Adds a user whose password is already hashed.
    pub fn add_user(&mut self, name: &str, role: Role, hash: String, now_ms: i64) -> Result<()> {
        if !valid_username(name) {
            return Err(Error::bad_request(format!(
                "{:?} is not a valid user name (1 to 64 of A-Z a-z 0-9 . _ - @)",
                name
            )));
        }
        if self.user(name).is_some() {
            return Err(Error::new(Kind::Conflict, format!("user {name:?} exists")));
        }
        self.users.push(User {
            username: name.to_owned(),
            role,
            hash,
            created_ms: now_ms,
        });
        Ok(())
    }

    pub fn set_hash(&mut self, name: &str, hash: String) -> Result<()> {
        let u = self
            .users
            .iter_mut()
            .find(|u| u.username == name)
            .ok_or_else(|| Error::not_found(format!("no user {name:?}")))?;
        u.hash = hash;
        Ok(())
    }

    pub fn remove_user(&mut self, name: &str) -> Result<()> {
        let u = self
            .user(name)
            .ok_or_else(|| Error::not_found(format!("no user {name:?}")))?;
        if u.role == Role::Admin && self.admins() == 1 {
            return Err(Error::new(
                Kind::Conflict,
                format!("{name:?} is the last admin"),
            ));
        }
        self.users.retain(|u| u.username != name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_unique_named_and_the_last_admin_stays() {
        let mut a = Accounts::default();
        a.add_user("ann", Role::Admin, "h".into(), 1).unwrap();
        assert_eq!(
            a.add_user("ann", Role::Viewer, "h".into(), 1)
                .unwrap_err()
                .kind,
            Kind::Conflict
        );
        assert_eq!(
            a.add_user("a/b", Role::Viewer, "h".into(), 1)
                .unwrap_err()
                .kind,
            Kind::BadRequest
        );
        assert_eq!(
            a.add_user("", Role::Viewer, "h".into(), 1)
                .unwrap_err()
                .kind,
            Kind::BadRequest
        );
        a.add_user("bob", Role::Viewer, "h".into(), 1).unwrap();
        assert_eq!(a.remove_user("ann").unwrap_err().kind, Kind::Conflict);
        a.remove_user("bob").unwrap();
        assert_eq!(a.remove_user("bob").unwrap_err().kind, Kind::NotFound);
    }

    #[test]
    fn an_unreadable_file_is_kept_aside() {
        let dir = std::env::temp_dir().join(format!("wf-acc-{}", std::process::id()));
        files::ensure_dir(&dir).unwrap();
        std::fs::write(dir.join(FILE), b"{not json").unwrap();
        assert_eq!(Accounts::load(&dir).unwrap(), Accounts::default());
        assert!(dir.join(format!("{FILE}.unreadable")).exists());
        let (a, ()) =
            Accounts::modify(&dir, |a| a.add_user("ann", Role::Admin, "h".into(), 5)).unwrap();
        assert_eq!(Accounts::load(&dir).unwrap(), a);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
