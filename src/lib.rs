//! wallflower-nvr: a small network video recorder. See ARCHITECTURE.md for the map.

pub mod config;
pub mod error;
pub mod mp4;
pub mod store;
pub mod time;
