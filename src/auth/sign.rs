//! Signed URLs, for players that can send neither a cookie nor a header (VLC, ffplay): the
//! path and query, the signer and an expiry, under HMAC-SHA-256 with a key kept in
//! `{state_dir}/sign.key`. The signature is the last query parameter and covers everything
//! before it, so nothing can be changed or added. It is checked when a request starts.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{Error, Result};

use super::{files, secret};

pub const KEY_FILE: &str = "sign.key";
pub const DEFAULT_TTL_S: i64 = 3600;
pub const MAX_TTL_S: i64 = 7 * 86_400;

/// The key, made on first use.
pub fn load_key(dir: &Path) -> Result<[u8; 32]> {
    let path = dir.join(KEY_FILE);
    if let Some(b) = files::read_optional(&path)?
        && let Ok(k) = <[u8; 32]>::try_from(b.as_slice())
    {
        return Ok(k);
    }
    let k = secret::random_bytes::<32>()?;
    files::write_atomic(&path, &k)?;
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    Ok(k)
}

/// `path_and_query` with `wf_user`, `wf_exp` (Unix seconds) and `wf_sig` appended.
pub fn sign(key: &[u8], path_and_query: &str, user: &str, exp_s: i64) -> String {
    let sep = if path_and_query.contains('?') {
        '&'
    } else {
        '?'
    };
    let unsigned = format!("{path_and_query}{sep}wf_user={user}&wf_exp={exp_s}");
    let sig = secret::mac(key, unsigned.as_bytes());
    format!("{unsigned}&wf_sig={sig}")
}

/// Whether the request's `path` and raw `query` carry a signature at all.
pub fn is_signed(query: &str) -> bool {
    query.split('&').any(|p| p.starts_with("wf_sig="))
}

/// The signer of a valid, unexpired signature.
pub fn verify(key: &[u8], path: &str, query: &str, now_ms: i64) -> Result<String> {
    let bad = || {
        Error::new(
            crate::error::Kind::Unauthorized,
            "the signature is not valid",
        )
    };
    let (before, sig) = query.rsplit_once("wf_sig=").ok_or_else(bad)?;
    let before = before.strip_suffix('&').unwrap_or(before);
    if sig.contains('&') || !before.contains("wf_exp=") {
        return Err(bad());
    }
    let unsigned = if before.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{before}")
    };
    if !secret::same(
        secret::mac(key, unsigned.as_bytes()).as_bytes(),
        sig.as_bytes(),
    ) {
        return Err(bad());
    }
    let field = |name: &str| {
        before
            .split('&')
            .filter_map(|p| p.split_once('='))
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v)
            .next_back()
    };
    let exp_s: i64 = field("wf_exp")
        .and_then(|v| v.parse().ok())
        .ok_or_else(bad)?;
    if now_ms >= exp_s.saturating_mul(1000) {
        return Err(Error::new(
            crate::error::Kind::Unauthorized,
            "the signed URL has expired",
        ));
    }
    Ok(field("wf_user").unwrap_or("").to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> (&str, &str) {
        url.split_once('?').unwrap_or((url, ""))
    }

    #[test]
    fn signatures_cover_the_path_the_query_and_the_expiry() {
        let key = [7u8; 32];
        let url = sign(
            &key,
            "/api/streams/a/playback.mp4?start=1&end=2",
            "ann",
            100,
        );
        let (p, q) = split(&url);
        assert_eq!(verify(&key, p, q, 99_999).unwrap(), "ann");
        assert!(verify(&key, p, q, 100_000).is_err(), "expired");
        assert!(verify(&[8u8; 32], p, q, 0).is_err(), "another key");
        assert!(
            verify(&key, "/api/streams/b/playback.mp4", q, 0).is_err(),
            "another path"
        );
        let changed = q.replace("end=2", "end=3");
        assert!(verify(&key, p, &changed, 0).is_err(), "another query");
        let later = q.replace("wf_exp=100", "wf_exp=900");
        assert!(verify(&key, p, &later, 0).is_err(), "a longer expiry");
        assert!(
            verify(&key, p, &format!("{q}&x=1"), 0).is_err(),
            "a parameter after"
        );
        assert!(verify(&key, p, "start=1", 0).is_err(), "no signature");
        let bare = sign(&key, "/api/recordings/1/stream", "bob", 100);
        let (p, q) = split(&bare);
        assert_eq!(verify(&key, p, q, 0).unwrap(), "bob");
    }
}
