//! The index: a redb cache of the segment files, and the indexer that keeps it level with them.
//! Only this subsystem touches redb.
//!
//! Invariants:
//! - The files are the truth; the index can always be rebuilt from them. An index of another
//!   schema version, or one redb cannot open, is moved aside and rebuilt by the backfill.
//! - Recordings are keyed by `(stream_id, start_ms)`; a recording's integer id is handed out once
//!   and never reused, and re-indexing the same file keeps its id.
//! - Every store call blocks: async callers use `spawn_blocking` (`web::block`).
//! - The indexer never deletes or changes a file; a file it cannot index is listed as
//!   unindexable, never silently skipped, and is not probed again until it changes.

pub mod indexer;
mod schema;
mod store;

pub use schema::{Change, Recording, SCHEMA_VERSION, Unindexable};
pub use store::Store;
