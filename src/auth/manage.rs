//! Managing accounts: users and tokens added, changed and removed, each change written to
//! `accounts.json` and brought into memory under one lock ([`Auth::commit`]).

use std::net::IpAddr;

use crate::error::{Error, Kind, Result};

use super::{Auth, Role, Token, User, accounts, password, secret};

impl Auth {
    /// Adds a user. Blocking. `by` names who did it for the audit log (`None`: the CLI).
    pub fn add_user(
        &self,
        username: &str,
        pw: &str,
        role: Role,
        by: Option<&str>,
        addr: IpAddr,
    ) -> Result<User> {
        if let Some(why) = password::check_new(pw) {
            return Err(Error::bad_request(why));
        }
        if !accounts::valid_username(username) {
            return Err(Error::bad_request(format!(
                "{username:?} is not a valid user name (1 to 64 of A-Z a-z 0-9 . _ - @)"
            )));
        }
        if self.accounts().user(username).is_some() {
            return Err(Error::new(
                Kind::Conflict,
                format!("user {username:?} exists"),
            ));
        }
        let hash = password::hash(pw)?;
        let now = self.now_ms();
        let (a, ()) = self.commit(|a| {
            if by == Some("setup") && !a.users.is_empty() {
                return Err(Error::new(Kind::Conflict, "the box is already set up"));
            }
            a.add_user(username, role, hash, now)
        })?;
        let user = a
            .user(username)
            .cloned()
            .ok_or_else(|| Error::internal("lost a user"))?;
        if let Some(by) = by {
            let action = if by == "setup" { "setup" } else { "user_add" };
            self.record(
                if by == "setup" { username } else { by },
                addr,
                action,
                username,
            );
        }
        Ok(user)
    }

    /// Sets a password and ends the user's other sessions. Blocking.
    pub fn set_password(&self, username: &str, pw: &str, keep: Option<&str>) -> Result<()> {
        if let Some(why) = password::check_new(pw) {
            return Err(Error::bad_request(why));
        }
        if self.accounts().user(username).is_none() {
            return Err(Error::not_found(format!("no user {username:?}")));
        }
        let hash = password::hash(pw)?;
        self.commit(|a| a.set_hash(username, hash))?;
        if self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .end_user(username, keep)
        {
            self.save_soon();
        }
        Ok(())
    }

    /// Checks `username`'s current password (a user changing their own). Blocking.
    pub fn check_password(&self, username: &str, pw: &str, addr: IpAddr) -> Result<()> {
        self.admit(addr)?;
        let a = self.accounts();
        if password::verify(pw, a.user(username).map(|u| u.hash.as_str())) {
            Ok(())
        } else {
            self.failed(addr);
            Err(Error::new(
                Kind::Forbidden,
                "the current password is not right",
            ))
        }
    }

    pub fn remove_user(&self, username: &str) -> Result<()> {
        self.commit(|a| a.remove_user(username)).map(|_| ())
    }

    /// Creates a token; returns its id and the token itself (shown once).
    pub fn add_token(&self, name: &str, role: Role, by: &str) -> Result<(String, String)> {
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(Error::bad_request(
                "a token needs a name of 1 to 64 characters",
            ));
        }
        let id = secret::hex(&secret::random_bytes::<6>()?);
        let token = format!("wf_{}", secret::hex(&secret::random_bytes::<32>()?));
        let now = self.now_ms();
        let t = Token {
            id: id.clone(),
            name: name.to_owned(),
            role,
            hash: secret::digest(&token),
            created_ms: now,
            created_by: by.to_owned(),
        };
        self.commit(|a| {
            a.tokens.push(t);
            Ok(())
        })?;
        Ok((id, token))
    }

    pub fn remove_token(&self, id: &str) -> Result<()> {
        self.commit(|a| {
            let before = a.tokens.len();
            a.tokens.retain(|t| t.id != id);
            if a.tokens.len() == before {
                return Err(Error::not_found(format!("no token {id:?}")));
            }
            Ok(())
        })
        .map(|_| ())
    }
}
