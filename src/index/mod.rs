//! The index: a redb cache of the segment files, and the indexer that keeps it level with them.
//! Only this subsystem touches redb.
//!
//! Invariants:
//! - The files are the truth; the index can always be rebuilt from them. An index of the
//!   previous schema version is migrated in place; one of an unknown version, or one redb cannot
//!   open, is moved aside and rebuilt by the backfill.
//! - No periodic task and no request reads every recording: per-stream totals and the hours
//!   that hold footage are kept beside them, in the same transactions (`derived.rs`).
//! - Recordings are keyed by `(stream_id, start_ms)`; a recording's integer id is handed out once
//!   and never reused, and re-indexing the same file keeps its id.
//! - Every store call blocks: async callers use `spawn_blocking` (`web::block`).
//! - The indexer never deletes or changes a file; a file it cannot index is listed as
//!   unindexable, never silently skipped, and is not probed again until it changes.

mod derived;
pub mod indexer;
mod schema;
mod store;

pub use schema::{Change, Recording, SCHEMA_VERSION, Unindexable};
pub use store::{CACHE_BYTES, Store};
