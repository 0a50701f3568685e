//! Reading requests: query parameters (times, ids), bodies with a size cap, and the blocking
//! pool every index and disk call goes through.

use super::*;

/// The largest request body accepted (a PATCH is a few bytes).
pub(super) const MAX_BODY: usize = 4096;

/// Runs `f` on the blocking pool.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + Sync + 'static,
) -> Result<T> {
    web::block(f).await.map_err(|e| match e {
        web::error::BlockingError::Error(e) => e,
        web::error::BlockingError::Canceled => Error::internal("blocking task canceled"),
    })
}

pub(super) fn query(req: &HttpRequest) -> Vec<(String, String)> {
    req.query_string()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub(super) fn percent_decode(s: &str) -> String {
    let hex = |c: Option<&u8>| c.and_then(|c| (*c as char).to_digit(16)).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(b.get(i + 1)), hex(b.get(i + 2))) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first of `names` present in the query.
pub(super) fn param<'q>(q: &'q [(String, String)], names: &[&str]) -> Option<&'q str> {
    names
        .iter()
        .find_map(|n| q.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str()))
}

pub(super) fn time_param(q: &[(String, String)], names: &[&str]) -> Result<Option<i64>> {
    match param(q, names) {
        None => Ok(None),
        Some(v) => time::parse_query_time(v).map(Some).ok_or_else(|| {
            Error::bad_request(format!(
                "{}: {v:?} is not an RFC 3339 time or Unix seconds",
                names[0]
            ))
        }),
    }
}

pub(super) fn id_param(req: &HttpRequest) -> Result<u64> {
    let raw = req.match_info().get("id").unwrap_or("");
    raw.parse()
        .map_err(|_| Error::bad_request(format!("{raw:?} is not a recording id")))
}

pub(super) fn json_ok(v: &Value) -> HttpResponse {
    HttpResponse::Ok().json(v)
}

/// The largest config text accepted (SPEC §6): a config of hundreds of cameras is far smaller.
pub(super) const MAX_CONFIG_BODY: usize = 1 << 20;

/// The request body, up to [`MAX_BODY`] bytes.
pub(super) async fn read_body(payload: web::types::Payload) -> Result<Vec<u8>> {
    read_body_up_to(payload, MAX_BODY).await
}

/// A config text, up to [`MAX_CONFIG_BODY`] bytes.
pub(super) async fn read_config_body(payload: web::types::Payload) -> Result<Vec<u8>> {
    read_body_up_to(payload, MAX_CONFIG_BODY).await
}

/// The request body, up to `limit` bytes. A larger one is read on (up to a bound) and dropped,
/// so the client is still reading when the 413 arrives instead of seeing a reset.
async fn read_body_up_to(mut payload: web::types::Payload, limit: usize) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = payload.recv().await {
        let chunk = chunk.map_err(|e| Error::bad_request(format!("reading the body: {e}")))?;
        seen += chunk.len();
        if seen > limit.saturating_mul(4).max(MAX_BODY * 256) {
            break;
        }
        if seen <= limit {
            body.extend_from_slice(&chunk);
        }
    }
    if seen > limit {
        return Err(Error::new(
            Kind::TooLarge,
            format!("the body is larger than {limit} bytes"),
        ));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("Europe%2FBerlin"), "Europe/Berlin");
        assert_eq!(percent_decode("a+b"), "a b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }
}
