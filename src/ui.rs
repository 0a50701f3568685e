//! The web UI, embedded in the binary so the box serves it with no internet and no files.
//!
//! One HTML file with its CSS and JavaScript inline: no build step, no CDN, one request.

pub const INDEX_HTML: &str = include_str!("../ui/index.html");

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
