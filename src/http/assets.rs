//! The web UI, embedded in the binary so the box serves it with no internet and no files: native
//! ES modules and one stylesheet from `ui/`, no build step, no framework, no CDN. `build.rs`
//! gzips each file at build time; a browser that accepts gzip gets those bytes.
//!
//! Invariant: a file is found by its exact name in the embedded table, never on disk.

use super::*;

/// One embedded file of `ui/`.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub raw: &'static [u8],
    pub gz: &'static [u8],
    /// Strong ETags of the raw and of the gzip bytes.
    pub etag: &'static str,
    pub etag_gz: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The embedded file called `name`.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

pub(super) async fn index_page(req: HttpRequest) -> Result<HttpResponse> {
    serve_asset(&req, "index.html")
}

pub(super) async fn ui_file(req: HttpRequest) -> Result<HttpResponse> {
    let name = req.match_info().get("file").unwrap_or_default().to_owned();
    serve_asset(&req, &name)
}

/// The asset with a 304 for a fresh `If-None-Match`, gzip when accepted; revalidated each time
/// (`no-cache`), so a new binary's UI is seen at once.
fn serve_asset(req: &HttpRequest, name: &str) -> Result<HttpResponse> {
    let a = asset(name).ok_or_else(|| Error::not_found(format!("no UI file {name}")))?;
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok());
    let gzip = header("accept-encoding").is_some_and(|v| {
        v.split(',')
            .any(|e| e.split(';').next().is_some_and(|e| e.trim() == "gzip"))
    });
    let (etag, body) = if gzip {
        (a.etag_gz, a.gz)
    } else {
        (a.etag, a.raw)
    };
    let fresh = header("if-none-match").is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut r = if fresh {
        HttpResponse::build(StatusCode::NOT_MODIFIED)
    } else {
        HttpResponse::Ok()
    };
    r.header("etag", etag)
        .header("cache-control", "no-cache")
        .header("vary", "accept-encoding");
    if fresh {
        return Ok(r.finish());
    }
    if gzip {
        r.header("content-encoding", "gzip");
    }
    Ok(r.content_type(a.content_type)
        .body(Bytes::from_static(body)))
}

/// Browsers ask for it on every page, the JSON ones too; the UI declares none.
pub(super) async fn favicon() -> HttpResponse {
    HttpResponse::NoContent()
        .header("cache-control", "max-age=86400")
        .finish()
}
