//! The web UI, embedded in the binary so the box serves it with no internet and no files.

pub const INDEX_HTML: &str = include_str!("../ui/index.html");
