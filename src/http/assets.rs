//! The web UI, embedded in the binary so the box serves it with no internet and no files.
//!
//! One HTML file with its CSS and JavaScript inline: no build step, no CDN, one request.

pub const INDEX_HTML: &str = include_str!("../../ui/index.html");

/// A strong ETag of [`INDEX_HTML`], so browsers revalidate with a 304 instead of a download.
pub fn etag() -> &'static str {
    static ETAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ETAG.get_or_init(|| {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        INDEX_HTML.hash(&mut h);
        format!("\"ui-{:016x}\"", h.finish())
    })
}

use super::*;

pub(super) async fn index_page(req: HttpRequest) -> HttpResponse {
    let etag = etag();
    let fresh = req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if fresh {
        return HttpResponse::build(StatusCode::NOT_MODIFIED)
            .header("etag", etag)
            .finish();
    }
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .header("etag", etag)
        .header("cache-control", "no-cache")
        .body(INDEX_HTML)
}
