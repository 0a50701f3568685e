//! Media: the MP4 box code and the plans built on it. Pure: no HTTP, no redb, no clock; it reads
//! files it is handed and returns values.
//!
//! - [`probe`]: duration, codecs and frame size of a segment, without ffprobe.
//! - [`fragments`]: the fragment index of a file (read incrementally while it grows) and its
//!   `sidx` boxes.
//! - [`rewrite`]: a `moof` moved to a new place in a new file, rewritten in place.
//! - [`stitch`]: `playback.mp4`/`.json` planned over consecutive segments.
//! - [`layout`]: virtual files made of memory, file ranges and moved fragments.
//!
//! Invariants:
//! - Every byte of a file is untrusted. Files are never read whole: the few leaves needed are
//!   read through the bounded reader in [`boxes`] and every other box is skipped by its size, so
//!   no file, however crafted, makes a probe allocate more than [`PROBE_BUDGET`] or loop longer
//!   than its own bytes allow. Every count is checked against the bytes that hold it.
//! - A fragment index holds at most [`fragments::MAX_FRAG_ENTRIES`] track-fragments.
//! - Stitched and live video are the segments' own bytes: only `moof` sequence numbers, decode
//!   times and absolute data offsets change, each keeping its width.

mod boxes;
pub mod fragments;
pub mod layout;
mod leaves;
pub mod probe;
pub mod rewrite;
pub mod stitch;

pub use boxes::PROBE_BUDGET;
pub use fragments::{FragTrack, Fragment, Fragments, Tail, fragments, fragments_of, sidx_boxes};
pub use probe::{Probe, probe, probe_file};
pub use rewrite::rewrite_moof;
