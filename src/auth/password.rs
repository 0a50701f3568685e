//! Password hashes: Argon2id with the `argon2` crate's defaults (19 MiB, 2 passes, 1 lane:
//! OWASP's minimum), in PHC string form. Each hash holds 19 MiB for its duration, so at most
//! [`MAX_CONCURRENT`] run at once on the whole box; the others wait their turn.

use std::sync::{Condvar, Mutex, OnceLock};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::error::{Error, Result};

use super::secret;

/// Hashes running at once: two keep a login quick while another runs, in 38 MiB.
pub const MAX_CONCURRENT: usize = 2;

/// Longest accepted password in bytes: hashing cost must not grow with what a client sends.
pub const MAX_LEN: usize = 1024;
/// Shortest accepted password in characters.
pub const MIN_CHARS: usize = 8;

struct Gate {
    running: Mutex<usize>,
    freed: Condvar,
}

static GATE: Gate = Gate {
    running: Mutex::new(0),
    freed: Condvar::new(),
};

/// Runs `f` once fewer than [`MAX_CONCURRENT`] hashes are running. Blocking: call it on the
/// blocking pool.
fn gated<T>(f: impl FnOnce() -> T) -> T {
    {
        let mut n = GATE.running.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= MAX_CONCURRENT {
            n = GATE.freed.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
    }
    let out = f();
    *GATE.running.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
    GATE.freed.notify_one();
    out
}

/// Why a new password is refused, or `None` if it is acceptable.
pub fn check_new(password: &str) -> Option<String> {
    if password.len() > MAX_LEN {
        Some(format!("the password is longer than {MAX_LEN} bytes"))
    } else if password.chars().count() < MIN_CHARS {
        Some(format!(
            "the password must have at least {MIN_CHARS} characters"
        ))
    } else {
        None
    }
}

pub fn hash(password: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&secret::random_bytes::<16>()?)
        .map_err(|e| Error::internal(format!("salt: {e}")))?;
    gated(|| {
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::internal(format!("password hash: {e}")))
    })
}

/// Whether `password` matches `phc`. With `phc = None` (an unknown user) the same work is done
/// against a fixed hash, so the answer takes as long as for a wrong password.
pub fn verify(password: &str, phc: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash("not a password of anybody").unwrap_or_default());
    let known = phc.is_some();
    let Ok(parsed) = PasswordHash::new(phc.unwrap_or(dummy)) else {
        return false;
    };
    if password.len() > MAX_LEN {
        return false;
    }
    let ok = gated(|| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    });
    ok && known
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_salted() {
        let a = hash("correct horse").unwrap();
        let b = hash("correct horse").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert!(verify("correct horse", Some(&a)));
        assert!(!verify("correct horsf", Some(&a)));
        assert!(!verify("correct horse", None));
        assert!(!verify("x", Some("not a phc string")));
    }

    #[test]
    fn new_passwords_have_bounds() {
        assert!(check_new("").is_some());
        assert!(check_new("1234567").is_some());
        assert!(check_new("12345678").is_none());
        assert!(check_new(&"x".repeat(MAX_LEN + 1)).is_some());
    }
}
