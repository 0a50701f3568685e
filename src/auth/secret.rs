//! Random values, digests and comparisons for secrets, all from `ring`.

use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, Result};

/// `n` bytes from the system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| Error::internal("the system random source failed"))?;
    Ok(b)
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// SHA-256 of `secret`, in hex: how session ids and tokens are kept.
pub fn digest(secret: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, secret.as_bytes()).as_ref())
}

/// Equal in a time that does not depend on where the two differ.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HMAC-SHA-256 of `msg` under `key`, in hex.
pub fn mac(key: &[u8], msg: &[u8]) -> String {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    hex(ring::hmac::sign(&k, msg).as_ref())
}

/// A code a person can read off a screen and type: 12 characters from an alphabet without
/// look-alikes, in groups of four (about 60 bits).
pub fn setup_code() -> Result<String> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let raw = random_bytes::<12>()?;
    let mut s = String::with_capacity(14);
    for (i, b) in raw.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            s.push('-');
        }
        s.push(ALPHABET[usize::from(b & 31)] as char);
    }
    Ok(s)
}

/// `text` with the user and password of every URL in it replaced by `***`
/// (`rtsp://admin:hunter2@cam/s` → `rtsp://***@cam/s`): camera URLs carry credentials, and
/// ffmpeg repeats its input URL in its errors, which go to the log and to viewers.
pub fn redact_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>') || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&tail[at..end]);
            }
            None => out.push_str(&tail[..end]),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// A camera URL as an admin may see it: the user kept, the password masked
/// (`rtsp://admin:hunter2@cam/s` → `rtsp://admin:***@cam/s`).
pub fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            let masked = if rest[..at].contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{masked}{}", &rest[at..])
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_password("rtsp://admin:hunter2@cam:554/s?a=b"),
            "rtsp://admin:***@cam:554/s?a=b"
        );
        assert_eq!(mask_password("rtsp://cam/s"), "rtsp://cam/s");
        assert_eq!(mask_password("rtsp://u@cam/s"), "rtsp://u@cam/s");
        assert_eq!(mask_password("rtsp://u:p:q@cam/s"), "rtsp://u:***@cam/s");
    }

    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(
            redact_credentials("rtsp://admin:hunter2@10.0.0.2:554/s1: Connection refused"),
            "rtsp://***@10.0.0.2:554/s1: Connection refused"
        );
        assert_eq!(
            redact_credentials("a \"rtsp://u:p@x\" and rtsps://v@y/z?q=1 and http://plain/x"),
            "a \"rtsp://***@x\" and rtsps://***@y/z?q=1 and http://plain/x"
        );
        assert_eq!(redact_credentials("no url: a@b"), "no url: a@b");
        assert_eq!(redact_credentials("rtsp://"), "rtsp://");
    }

    #[test]
    fn digests_and_macs_are_the_standard_ones() {
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // RFC 4231, test case 2.
        assert_eq!(
            mac(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }

    #[test]
    fn random_values_differ() {
        let a = random_bytes::<32>().unwrap();
        let b = random_bytes::<32>().unwrap();
        assert_ne!(a, b);
        let c = setup_code().unwrap();
        assert_eq!(c.len(), 14);
        assert_ne!(c, setup_code().unwrap());
    }
}
