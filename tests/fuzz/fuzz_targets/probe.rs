//! The MP4 probe on arbitrary bytes: it must never panic, hang or allocate without bound.
//! Seed it with `bash tests/fuzz/make-corpus.sh`, then `cargo fuzz run --fuzz-dir tests/fuzz probe`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wallflower_nvr::media::probe(&mut std::io::Cursor::new(data), data.len() as u64);
});
