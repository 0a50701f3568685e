//! What the access middleware reads from a request, on arbitrary bytes: the path against the
//! route table, the query's signature, the Cookie header, and the redaction of URLs in text.
//! None of it may panic, and a signature made with another key must never verify.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wallflower_nvr::auth::{secret, sign};
use wallflower_nvr::http::access;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let path = parts.next().unwrap_or("");
    let query = parts.next().unwrap_or("");
    let cookie = parts.next().unwrap_or("");
    let _ = access::owner_of("GET", path);
    let _ = access::owner_of("DELETE", path);
    // The all-zero key never signed anything here: nothing may verify under it by accident,
    // and a URL this key signed must verify (and not expire at time 0).
    assert!(sign::verify(&[0u8; 32], path, query, 0).is_err() || query.contains("wf_sig="));
    let url = sign::sign(&[1u8; 32], &format!("{path}?{query}"), "u", 1);
    if let Some((p, q)) = url.split_once('?')
        && !path.contains('?')
    {
        assert!(sign::verify(&[1u8; 32], p, q, 0).is_ok(), "{url}");
    }
    let mut headers = ntex::http::HeaderMap::new();
    if let Ok(v) = ntex::http::header::HeaderValue::from_str(cookie) {
        headers.insert(ntex::http::header::COOKIE, v);
        let _ = access::session_cookie(&headers);
    }
    let red = secret::redact_credentials(&text);
    assert!(red.len() <= text.len() + 3 * text.matches("://").count());
});
