//! Embeds the web UI (`ui/`): every file raw and gzip-compressed, with a strong ETag each, as
//! `$OUT_DIR/assets.rs` (a table `ASSETS` that `src/http/assets.rs` includes). Compressing here
//! costs nothing at run time and keeps no compressor in the binary.

use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::Path;

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

fn main() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    println!("cargo:rerun-if-changed={}", ui.display());
    let mut names: Vec<String> = std::fs::read_dir(&ui)
        .expect("ui/ is there")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    let mut table = String::from("pub static ASSETS: &[Asset] = &[\n");
    for name in &names {
        let path = ui.join(name);
        println!("cargo:rerun-if-changed={}", path.display());
        let raw = std::fs::read(&path).expect("a UI file reads");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&raw).expect("gzip into memory");
        let gz = gz.finish().expect("gzip into memory");
        let gz_path = Path::new(&out).join(format!("{name}.gz"));
        std::fs::write(&gz_path, &gz).expect("OUT_DIR is writable");
        let mut h = std::hash::DefaultHasher::new();
        raw.hash(&mut h);
        let _ = writeln!(
            table,
            "    Asset {{ name: {name:?}, content_type: {:?}, raw: include_bytes!({:?}), gz: include_bytes!({:?}), etag: \"\\\"ui-{:016x}\\\"\", etag_gz: \"\\\"ui-{:016x}-gz\\\"\" }},",
            content_type(name),
            path.display().to_string(),
            gz_path.display().to_string(),
            h.finish(),
            h.finish(),
        );
    }
    table.push_str("];\n");
    std::fs::write(Path::new(&out).join("assets.rs"), table).expect("OUT_DIR is writable");
}
