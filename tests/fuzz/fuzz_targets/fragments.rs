//! The fragment index on arbitrary bytes, read whole and as a file that grows, and every
//! fragment's `moof` rewritten as playback does: no panic, no hang, no unbounded allocation.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use wallflower_nvr::media;

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    if let Ok(Some(f)) = media::fragments_of(&mut Cursor::new(data), len) {
        let shift: Vec<(u32, i64)> = f.tracks.iter().map(|t| (t.id, 90_000)).collect();
        for (i, fr) in f.frags.iter().enumerate() {
            let end = fr.offset.saturating_add(u64::from(fr.moof_len));
            if let Some(moof) = data.get(fr.offset as usize..end as usize) {
                let _ = media::rewrite_moof(&mut moof.to_vec(), i as u32, 1000, &shift);
            }
        }
        let _ = f.sidx_boxes();
    }
    // The same bytes as a segment being written: first half, then the rest.
    let mut tail = media::Tail::default();
    let _ = tail.next(&mut Cursor::new(data), len / 2);
    let _ = tail.next(&mut Cursor::new(data), len);
});
